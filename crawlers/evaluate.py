"""Extraction scorer for the gold pages (`with` recall, `without` leaks, title match), ours vs trafilatura.

Used by the benchmark (`bench/`) and by a test that holds the quality floor. Gold sentences are
compared whitespace-collapsed and NFC, as the gold file is written.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import trafilatura

from crawlers.extract import extract_article

#: (html bytes, url) → (title, text)
Extractor = Callable[[bytes, str], tuple[str, str]]


def _norm(text: str) -> str:
    return unicodedata.normalize("NFC", re.sub(r"\s+", " ", text)).strip()


def duluan_extractor(html: bytes, url: str) -> tuple[str, str]:
    article = extract_article(html, url, min_body_chars=0)
    return (article.title, article.text) if article else ("", "")


def trafilatura_extractor(html: bytes, url: str) -> tuple[str, str]:
    """trafilatura alone, default settings, as the baseline."""
    document = trafilatura.bare_extraction(html, url=url, with_metadata=True)
    if document is None or isinstance(document, dict):
        return "", ""
    return document.title or "", document.text or ""


@dataclass
class ExtractionScore:
    """Micro-averaged over all gold sentences of all pages."""

    name: str
    pages: int = 0
    with_found: int = 0
    with_total: int = 0
    without_leaked: int = 0
    without_total: int = 0
    titles_exact: int = 0
    seconds: float = 0.0  # CPU time of this process, so a busy machine does not skew the comparison
    leaks: list[str] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.with_found / self.with_total if self.with_total else 0.0

    @property
    def leak_rate(self) -> float:
        return self.without_leaked / self.without_total if self.without_total else 0.0

    @property
    def f1(self) -> float:
        """Recall of `with` against precision proxied by 1 − leak rate of `without`."""
        precision = 1.0 - self.leak_rate
        total = precision + self.recall
        return 2 * precision * self.recall / total if total else 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(recall=round(self.recall, 4), leak_rate=round(self.leak_rate, 4), f1=round(self.f1, 4))
        return data


def score(pages_dir: Path, extractor: Extractor, name: str) -> ExtractionScore:
    """Score one extractor on every page listed in `pages_dir/gold.jsonl`."""
    result = ExtractionScore(name=name)
    for line in (pages_dir / "gold.jsonl").read_text(encoding="utf-8").splitlines():
        gold = json.loads(line)
        html = (pages_dir / gold["file"]).read_bytes()
        started = time.process_time()
        title, text = extractor(html, gold["url"])
        result.seconds += time.process_time() - started
        body = _norm(text)
        result.pages += 1
        result.titles_exact += int(_norm(title) == _norm(gold["title"]))
        for sentence in gold["with"]:
            result.with_total += 1
            if _norm(sentence) in body:
                result.with_found += 1
            else:
                result.misses.append(f"{gold['file']}: {sentence[:60]}")
        for sentence in gold["without"]:
            result.without_total += 1
            if _norm(sentence) in body:
                result.without_leaked += 1
                result.leaks.append(f"{gold['file']}: {sentence[:60]}")
    return result


def compare(pages_dir: Path) -> dict[str, ExtractionScore]:
    """Ours and trafilatura alone on the same pages, in the same run."""
    return {
        "duluan": score(pages_dir, duluan_extractor, "duluan"),
        "trafilatura": score(pages_dir, trafilatura_extractor, "trafilatura"),
    }
