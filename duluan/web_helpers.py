"""Pure helpers of the web app: charts as inline SVG, the alert-rule dry run, the digest archive.

Kept apart from the routes so each is a small function over plain data that tests can call directly.
"""

from __future__ import annotations

import heapq
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

from alerts.engine import should_fire
from alerts.rules import EvaluationContext, rule_type_for
from alerts.schedule import parse_schedule
from alerts.store import KeyState, RuleSpec
from index.backend import SearchBackend
from schema import Document

# -- result cache ------------------------------------------------------------------------------------


class ResultCache:
    """A small thread-safe LRU of search results (hits, facets, chart) for the web process.

    An entry is served only while the index `generation` it was computed on is current and it is
    younger than `ttl_s`. For the embedded index the generation is the `meta.json` stamp that every
    commit of any process rewrites, so a cached page is never older than the index; for a remote index
    (no file to watch) entries simply expire after `ttl_s`.
    """

    def __init__(
        self, generation: Callable[[], Hashable], *, max_entries: int = 1024, ttl_s: float = 60.0
    ) -> None:
        self.generation = generation
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._entries: OrderedDict[Hashable, tuple[Hashable, float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._computing: dict[Hashable, threading.Lock] = {}
        self.hits = 0
        self.misses = 0

    def _fresh(self, key: Hashable, generation: Hashable, now: float) -> tuple[bool, Any]:
        found = self._entries.get(key)
        if found is not None and found[0] == generation and now - found[1] < self.ttl_s:
            self._entries.move_to_end(key)
            return True, found[2]
        return False, None

    def peek(self, key: Hashable) -> Any:
        """The cached value of `key` if it is fresh, else None (never computes)."""
        generation = self.generation()
        with self._lock:
            hit, value = self._fresh(key, generation, time.monotonic())
            if hit:
                self.hits += 1
            return value

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The cached value of `key`, or `compute()`'s. Concurrent misses on one key compute it once
        (the others wait for it), so a burst of people opening the same page costs one search."""
        generation = self.generation()
        with self._lock:
            hit, value = self._fresh(key, generation, time.monotonic())
            if hit:
                self.hits += 1
                return value
            key_lock = self._computing.setdefault(key, threading.Lock())
        with key_lock:  # other keys are served meanwhile
            with self._lock:
                hit, value = self._fresh(key, generation, time.monotonic())
                if hit:
                    self.hits += 1
                    return value
                self.misses += 1
            try:
                value = compute()
            except BaseException:
                with self._lock:
                    self._computing.pop(key, None)
                raise
            with self._lock:
                self._entries[key] = (generation, time.monotonic(), value)
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
                self._computing.pop(key, None)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def index_generation(index_dir: Path | None) -> Callable[[], Hashable]:
    """The generation function of `ResultCache`: the embedded index's `meta.json` (mtime, size), or a
    constant when there is no such file (remote index: the TTL alone bounds staleness)."""
    if index_dir is None:
        return lambda: 0
    meta = index_dir / "meta.json"

    def generation() -> Hashable:
        try:
            stat = meta.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    return generation


# -- charts --------------------------------------------------------------------------------------------


def svg_bar_chart(
    points: list[tuple[str, int]],
    *,
    width: int = 720,
    height: int = 180,
    title: str = "",
    colour: str = "#2f6db5",
) -> str:
    """A bar chart as an inline SVG string (no JavaScript, no CDN). Labels are escaped here."""
    pad_left, pad_bottom, pad_top = 40, 28, 18
    plot_w, plot_h = width - pad_left - 8, height - pad_bottom - pad_top
    peak = max((v for _, v in points), default=0) or 1
    n = max(len(points), 1)
    bar_w = plot_w / n
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="100%" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{pad_left}" y1="{pad_top + plot_h}" x2="{width - 8}" y2="{pad_top + plot_h}" '
        'stroke="#999"/>',
        f'<text x="{pad_left - 4}" y="{pad_top + 4}" text-anchor="end" font-size="11">{peak}</text>',
        f'<text x="{pad_left - 4}" y="{pad_top + plot_h}" text-anchor="end" font-size="11">0</text>',
    ]
    label_every = max(1, n // 12)
    for i, (label, value) in enumerate(points):
        h = plot_h * value / peak
        x = pad_left + i * bar_w
        parts.append(
            f'<rect class="bar" x="{x + 1:.1f}" y="{pad_top + plot_h - h:.1f}" '
            f'width="{max(bar_w - 2, 1):.1f}" height="{h:.1f}" fill="{colour}">'
            f"<title>{escape(label)}: {value}</title></rect>"
        )
        if i % label_every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - 10}" text-anchor="middle" font-size="10">'
                f"{escape(label)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def svg_stacked_sentiment(
    days: list[tuple[str, dict[str, int]]], *, width: int = 720, height: int = 180
) -> str:
    """Stacked bars per day: negative (red), neutral (grey), positive (green)."""
    colours = {"negative": "#c0392b", "neutral": "#95a5a6", "positive": "#27ae60"}
    pad_left, pad_bottom, pad_top = 40, 28, 18
    plot_w, plot_h = width - pad_left - 8, height - pad_bottom - pad_top
    peak = max((sum(c.values()) for _, c in days), default=0) or 1
    bar_w = plot_w / max(len(days), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
        'width="100%" aria-label="Sắc thái theo ngày"><title>Sắc thái theo ngày</title>',
        f'<text x="{pad_left - 4}" y="{pad_top + 4}" text-anchor="end" font-size="11">{peak}</text>',
    ]
    for i, (label, counts) in enumerate(days):
        x = pad_left + i * bar_w
        y = float(pad_top + plot_h)
        for key in ("negative", "neutral", "positive"):
            h = plot_h * counts.get(key, 0) / peak
            y -= h
            parts.append(
                f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(bar_w - 2, 1):.1f}" height="{h:.1f}" '
                f'fill="{colours[key]}"><title>{escape(label)} {key}: {counts.get(key, 0)}</title></rect>'
            )
        parts.append(
            f'<text x="{x + bar_w / 2:.1f}" y="{height - 10}" text-anchor="middle" font-size="10">'
            f"{escape(label)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


# -- alert rule dry run --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DryRunAlert:
    """An alert the rule would have sent (cảnh báo giả lập)."""

    at: datetime
    key: str
    title: str
    reason: str
    counts: dict[str, float]
    documents: list[dict[str, Any]]


@dataclass
class DryRunResult:
    rule: str
    start: datetime
    end: datetime
    evaluations: int
    alerts: list[DryRunAlert] = field(default_factory=list)
    suppressed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "evaluations": self.evaluations,
            "suppressed": self.suppressed,
            "alerts": [
                {
                    "at": a.at.isoformat(),
                    "key": a.key,
                    "title": a.title,
                    "reason": a.reason,
                    "counts": a.counts,
                    "documents": a.documents,
                }
                for a in self.alerts
            ],
        }


def dry_run_rule(
    backend: SearchBackend,
    spec: RuleSpec,
    now: datetime,
    *,
    days: int = 7,
    min_step: timedelta = timedelta(hours=1),
    max_alerts: int = 200,
) -> DryRunResult:
    """Replay a rule over the last `days`: evaluate it at each scheduled moment (at most hourly) with
    the engine's own re-alert policy held in memory. Writes nothing, sends nothing."""
    rule_type = rule_type_for(spec.rule_type, spec.params)
    schedule = parse_schedule(spec.schedule)
    step = max(schedule.interval or min_step, min_step)
    start = now - timedelta(days=days)
    result = DryRunResult(spec.name, start, now, 0)
    states: dict[str, KeyState] = {}
    suppression = timedelta(minutes=spec.suppression_minutes)
    last_run: datetime | None = None
    moment = start + step
    while moment <= now:
        result.evaluations += 1
        for finding in rule_type.evaluate(backend, spec.scope, EvaluationContext(moment, last_run)):
            prior = states.get(finding.key)
            if not should_fire(finding, prior, moment, suppression):
                if prior is not None and prior.last_fingerprint != finding.fingerprint:
                    result.suppressed += 1
                continue
            seen = set(prior.state.get("seen_ids", [])) if prior else set()
            seen |= set(finding.evidence_ids or ())
            states[finding.key] = KeyState(
                finding.key, moment, finding.fingerprint, {"seen_ids": sorted(seen)}
            )
            if len(result.alerts) < max_alerts:
                result.alerts.append(
                    DryRunAlert(
                        moment,
                        finding.key,
                        finding.title,
                        finding.reason,
                        finding.counts,
                        [d.as_dict() for d in finding.documents],
                    )
                )
        last_run = moment
        moment += step
    return result


# -- digest archive ------------------------------------------------------------------------------------

_DIGEST_NAME = re.compile(r"^ban-tin-(\d{4}-\d{2}-\d{2})\.html$")


def list_digests(digests_dir: Path) -> list[tuple[date, Path]]:
    """Digests in the archive, newest first."""
    if not digests_dir.is_dir():
        return []
    found = []
    for path in digests_dir.iterdir():
        match = _DIGEST_NAME.match(path.name)
        if match and path.is_file():
            found.append((date.fromisoformat(match.group(1)), path))
    return sorted(found, reverse=True)


def digest_path(digests_dir: Path, day: date) -> Path | None:
    """The archived digest of `day`, if any (the name is built from a date, never from user text)."""
    path = digests_dir / f"ban-tin-{day.isoformat()}.html"
    return path if path.is_file() else None


def digest_pdf_path(digests_dir: Path, day: date) -> Path | None:
    """The archived PDF of `day`'s digest, if it was rendered."""
    path = digests_dir / f"ban-tin-{day.isoformat()}.pdf"
    return path if path.is_file() else None


# -- safe links ----------------------------------------------------------------------------------------


def safe_http_url(url: str) -> str | None:
    """`url` if it is an absolute http(s) URL (never `javascript:` or `data:`), else None."""
    return url if re.match(r"^https?://[^\s/]+", url or "", re.IGNORECASE) else None


# -- labelling queue -----------------------------------------------------------------------------------


def model_confidence(scores: dict[str, float]) -> float | None:
    """How sure the model was: its top class probability (None when the model gave no scores)."""
    return max(scores.values()) if scores else None


def least_certain(
    documents: Iterable[Document], task: str, limit: int, exclude: set[str]
) -> list[tuple[Document, float]]:
    """The documents the `task` model (topic or sentiment) was least sure about, least sure first:
    the analysts' labelling queue (hàng đợi gán nhãn). Already-labelled ids are skipped."""
    scored = []
    for doc in documents:
        if doc.id in exclude:
            continue
        confidence = model_confidence(doc.topic_scores if task == "topic" else doc.sentiment_scores)
        if confidence is not None:
            scored.append((doc, confidence))
    return heapq.nsmallest(limit, scored, key=lambda pair: (pair[1], pair[0].id))


# -- models --------------------------------------------------------------------------------------------

MODEL_TASKS = ("topic", "sentiment", "toxicity")


def model_summaries(models_dir: Path | None) -> list[dict[str, Any]]:
    """The model in use for each NLP task, with its training facts and evaluation on each held-out
    set (accuracy, macro-F1, confusion matrix), read from the `metrics.json` beside the model file."""
    from nlp.classify import find_model_file

    out: list[dict[str, Any]] = []
    for task in MODEL_TASKS:
        try:
            path = find_model_file(task, models_dir)
        except FileNotFoundError as exc:
            out.append({"task": task, "path": None, "error": str(exc), "evaluations": []})
            continue
        metrics_file = path.parent / "metrics.json"
        metrics: dict[str, Any] = {}
        if metrics_file.is_file():
            try:
                metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                metrics = {"error": f"unreadable metrics.json: {exc}"}
        model = metrics.get("model", {})
        evaluations = [
            {
                "name": name,
                "n": ev.get("n"),
                "accuracy": ev.get("accuracy"),
                "macro_f1": ev.get("macro_f1"),
                "labels": ev.get("labels", []),
                "confusion": ev.get("confusion", []),
            }
            for split in ("dev", "test")
            for name, ev in (metrics.get(split) or {}).items()
            if isinstance(ev, dict)
        ]
        out.append(
            {
                "task": task,
                "path": str(path),
                "trained_at": model.get("trained_at"),
                "rows": model.get("rows"),
                "classifier": model.get("classifier"),
                "evaluations": evaluations,
                "error": metrics.get("error"),
            }
        )
    return out
