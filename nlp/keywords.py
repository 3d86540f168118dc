"""Keywords per document (từ khóa) for digests and trending terms.

Words are found by longest-match against underthesea's Viet74K word list (read from the installed
package, not copied) — a dictionary segmenter is ~50× faster than the CRF segmenter and good enough
to find multi-syllable words. Runs of capitalised syllables (names of people, places, bodies) are
kept whole. Terms are scored by frequency, boosted when they occur in the title or the lead, and
stopwords (vietnamese-stopwords, MIT, ``lexicon/vi_stopwords.txt``) are dropped.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

from nlp.normalize import normalize_tone_marks, replace_urls

STOPWORDS_PATH = Path(__file__).parent / "lexicon" / "vi_stopwords.txt"
_TOKEN_RE = re.compile(r"[^\W_]+|[.,;:!?()\"“”\n–-]", re.UNICODE)
_MAX_WORD = 4
_DIGIT_RE = re.compile(r"\d")
_BODY_WORDS = frozenset(
    {"Cục", "Bộ", "Sở", "Ban", "Tổng", "Công", "Ủy", "Hội", "Viện", "Trường", "Tập", "Ngân"}
)
TITLE_BOOST = 3.0
LEAD_BOOST = 1.5


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    lines = STOPWORDS_PATH.read_text(encoding="utf-8").splitlines()
    return frozenset(normalize_tone_marks(s.strip().lower()) for s in lines if s.strip())


@lru_cache(maxsize=1)
def word_list() -> frozenset[str]:
    """Multi-syllable Vietnamese words (lower-case, space-separated) from underthesea's Viet74K."""
    spec = find_spec("underthesea")
    if spec is None or spec.origin is None:
        return frozenset()
    path = Path(spec.origin).parent / "corpus" / "data" / "Viet74K.txt"
    if not path.exists():
        return frozenset()
    words = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        word = normalize_tone_marks(line.strip().lower())
        if 2 <= word.count(" ") + 1 <= _MAX_WORD:
            words.add(word)
    return frozenset(words)


def segment(text: str) -> list[str]:
    """Words of ``text``: capitalised runs kept whole, other syllables joined by longest dictionary match."""
    tokens = _TOKEN_RE.findall(normalize_tone_marks(text))
    words = word_list()
    out: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok[0].isalnum():
            out.append(tok)
            i += 1
            continue
        if tok[0].isupper():  # two or more capitalised syllables in a row: a name, even sentence-initially
            j = i + 1
            while j < len(tokens) and tokens[j][0].isupper() and j - i < 5:
                j += 1
            # "Cục Hàng không": a body's name continues in lower case; leave it to the dictionary.
            body_name = tok in _BODY_WORDS and j < len(tokens) and tokens[j][0].islower()
            if j - i >= 2 and not body_name:
                out.append(" ".join(tokens[i:j]))
                i = j
                continue
        for n in range(min(_MAX_WORD, len(tokens) - i), 1, -1):
            cand = " ".join(tokens[i : i + n]).lower()
            if cand in words:
                out.append(" ".join(tokens[i : i + n]))
                i += n
                break
        else:
            out.append(tok)
            i += 1
    return out


def _is_candidate(word: str, stop: frozenset[str]) -> bool:
    if not word[0].isalpha() or _DIGIT_RE.search(word):
        return False
    if word.lower() in stop:
        return False
    return " " in word or (word[0].isupper() and len(word) > 1 and word.isupper())


def extract_keywords(
    title: str, text: str, k: int = 10, lead_chars: int = 400, max_chars: int = 3000
) -> list[str]:
    """Top ``k`` keywords of a document, most important first (multi-syllable words and names)."""
    stop = stopwords()
    body = replace_urls(text[:max_chars])
    scores: dict[str, float] = {}
    surface: dict[str, str] = {}
    parts = ((title, TITLE_BOOST), (body[:lead_chars], LEAD_BOOST), (body[lead_chars:], 1.0))
    for part, boost in parts:
        for word in segment(part):
            if _is_candidate(word, stop):
                key = word.lower()
                scores[key] = scores.get(key, 0.0) + boost
                # Prefer the capitalised spelling for names (Đồng Nai), lower case for common words.
                if key not in surface or (word[0].isupper() and not surface[key][0].isupper()):
                    surface[key] = word if _looks_like_name(word) else key
    ranked = sorted(scores, key=lambda key: (-scores[key], key))
    return [surface[key] for key in ranked[:k]]


def _looks_like_name(word: str) -> bool:
    return all(part[0].isupper() for part in word.split(" "))
