"""The UI's languages: Vietnamese (the default, and the text written in the templates) and English.

Templates mark every text for people as `_("Vietnamese text")`, with `{name}` placeholders filled from
keyword arguments: `_("{n} báo đăng", n=3)`. The Vietnamese text is the message key (as in gettext),
so Vietnamese needs no catalog; `en.json` maps each key to its English text. `tests/web/test_i18n.py`
checks the catalog is complete: every marked text in the templates (and every topic, sentiment and
role name) has an English entry, and no entry is left unused. The chosen language lives in a cookie.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Literal

Language = Literal["vi", "en"]
LANGUAGES: dict[str, str] = {"vi": "Tiếng Việt", "en": "English"}
DEFAULT_LANGUAGE: Language = "vi"
LANG_COOKIE = "duluan_lang"
CATALOG_DIR = Path(__file__).parent

Translate = Callable[..., str]


@cache
def catalog(language: str) -> dict[str, str]:
    """Vietnamese text → text in `language` (empty for Vietnamese itself)."""
    if language == DEFAULT_LANGUAGE:
        return {}
    path = CATALOG_DIR / f"{language}.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"{path}: expected a JSON object of Vietnamese text → translated text")
    return {str(k): v for k, v in data.items()}


def N_(text: str) -> str:
    """Marks a Vietnamese text in Python code for translation where it is shown (templates call `_`
    on it); the catalog check collects these marks like the templates' `_("...")`."""
    return text


def language_of(value: str | None) -> Language:
    """A supported language code from a cookie value; Vietnamese otherwise."""
    return "en" if value == "en" else DEFAULT_LANGUAGE


def translator(language: str) -> Translate:
    """`_(text, **values)`: `text` in `language` (Vietnamese when no entry exists), placeholders filled."""
    entries = catalog(language)

    def translate(text: str, **values: object) -> str:
        out = entries.get(text, text)
        return out.format(**values) if values else out

    return translate


def translated(mapping: dict[str, str], language: str) -> dict[str, str]:
    """A code → Vietnamese name mapping (topics, sentiments, roles) with names in `language`."""
    entries = catalog(language)
    return {code: entries.get(name, name) for code, name in mapping.items()}
