"""Rule types (loại luật cảnh báo), ElastAlert-style: one small class per type behind a registry.

Each class gathers counts or documents from a `SearchBackend` (the I/O edge) and hands them to a pure
decision function that is unit-tested on plain numbers. The engine only knows `RULE_TYPES`; adding a
rule type is a new class plus `@register_rule_type`.
"""

from __future__ import annotations

import hashlib
import math
import re
import statistics
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from index.backend import SearchBackend, SearchFilters
from schema import Document

#: How many example documents an alert carries (bài tiêu biểu).
TOP_DOCUMENTS = 5


# --------------------------------------------------------------------------------------------------
# Plain data passed between the rule types and the engine
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleScope:
    """What a rule watches: a query in the staff query language plus structured filters."""

    query: str = ""
    filters: SearchFilters = field(default_factory=SearchFilters)


@dataclass(frozen=True)
class DocumentSummary:
    """The few fields of a document an alert or digest shows (bài viết tiêu biểu)."""

    id: str
    title: str
    url: str
    source: str
    published_at: str | None
    sentiment: str | None
    province_relevance: float
    cluster_id: str | None

    @classmethod
    def of(cls, doc: Document) -> DocumentSummary:
        when = doc.published_at or doc.fetched_at
        return cls(
            id=doc.id,
            title=doc.title,
            url=doc.url,
            source=doc.source,
            published_at=when.isoformat() if when else None,
            sentiment=doc.sentiment,
            province_relevance=doc.province_relevance,
            cluster_id=doc.cluster_id,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "url": self.url,
            "source": self.source,
            "published_at": self.published_at,
            "sentiment": self.sentiment,
            "province_relevance": self.province_relevance,
            "cluster_id": self.cluster_id,
        }


@dataclass(frozen=True)
class Finding:
    """One reason to alert, for one key (a story cluster, or the whole scope).

    `fingerprint` identifies the evidence: the engine never fires twice for the same rule, key and
    fingerprint, which makes a re-run over the same data a no-op.
    """

    key: str
    title: str
    reason: str
    counts: dict[str, float]
    documents: list[DocumentSummary]
    fingerprint: str
    story_key: str | None = None
    #: Documents behind a document-level finding: the engine fires only if one is not yet alerted for
    #: this key (so a re-read overlap never re-alerts old copies). None for count-based findings.
    evidence_ids: frozenset[str] | None = None


@dataclass(frozen=True)
class EvaluationContext:
    """Everything a rule type may look at besides the index."""

    now: datetime
    last_run_at: datetime | None


def fingerprint_of(*parts: object) -> str:
    """A short stable hash of the evidence behind a finding."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()
    return digest[:32]


def story_key_of(doc: Document) -> str:
    """Copies of one story share a cluster; a document without a cluster is its own story."""
    return f"cluster:{doc.cluster_id}" if doc.cluster_id else f"doc:{doc.id}"


# --------------------------------------------------------------------------------------------------
# Pure decision functions
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoryGroup:
    """Matching documents of one story cluster (cụm tin): one alert per story, not per copy."""

    story_key: str
    documents: list[Document]

    @property
    def outlets(self) -> set[str]:
        return {d.source for d in self.documents}


def _doc_time(doc: Document) -> datetime:
    return doc.published_at or doc.fetched_at


def group_by_story(documents: Iterable[Document]) -> list[StoryGroup]:
    """Collapse copies of a story; groups ordered by size, then most recent; documents newest first."""
    groups: dict[str, list[Document]] = {}
    for doc in documents:
        groups.setdefault(story_key_of(doc), []).append(doc)
    result = [
        StoryGroup(key, sorted(docs, key=lambda d: (_doc_time(d), d.id), reverse=True))
        for key, docs in groups.items()
    ]
    result.sort(key=lambda g: (-len(g.documents), -_doc_time(g.documents[0]).timestamp(), g.story_key))
    return result


def threshold_reached(count: int, min_count: int) -> bool:
    """Threshold rule (ngưỡng): at least `min_count` matches in the window."""
    return count >= min_count


def negative_share_exceeded(negative: int, total: int, min_share: float, min_documents: int) -> bool:
    """Negative-share rule (tỷ lệ tiêu cực): enough documents AND a share strictly above `min_share`."""
    if total < min_documents or total <= 0:
        return False
    return negative / total > min_share


@dataclass(frozen=True)
class SpikeVerdict:
    fired: bool
    current: int
    mean: float
    stdev: float
    threshold: float


#: σ never counts as less than this, so a flat-zero baseline cannot make one document a spike.
MIN_SPIKE_STDEV = 1.0


def spike_verdict(current: int, baseline: Sequence[float], k: float, min_count: int) -> SpikeVerdict:
    """Spike rule (đột biến): current volume above mean + k·σ of the same-hour baseline.

    Never fires below `min_count` or without a baseline. σ is floored at √mean (the Poisson noise of
    a count: 14 samples often under-estimate it) and at `MIN_SPIKE_STDEV`, so that 0-vs-1 style noise
    on quiet scopes never alerts. On a synthetic stream this raised precision at k=3 from 0.61 to 0.90
    at equal recall (see the report of issue 6).
    """
    if not baseline:
        return SpikeVerdict(False, current, 0.0, 0.0, math.inf)
    mean = statistics.fmean(baseline)
    stdev = statistics.pstdev(baseline) if len(baseline) > 1 else 0.0
    threshold = mean + k * max(stdev, math.sqrt(mean), MIN_SPIKE_STDEV)
    return SpikeVerdict(current >= min_count and current > threshold, current, mean, stdev, threshold)


def stories_reaching_outlets(
    documents: Iterable[Document], min_outlets: int, within_hours: float
) -> list[StoryGroup]:
    """New-story rule (tin mới lan rộng): clusters carried by ≥ `min_outlets` outlets within
    `within_hours` of the cluster's first document. Unclustered documents never qualify."""
    qualifying = []
    for group in group_by_story(d for d in documents if d.cluster_id):
        first = min(_doc_time(d) for d in group.documents)
        deadline = first + timedelta(hours=within_hours)
        early = [d for d in group.documents if _doc_time(d) <= deadline]
        if len({d.source for d in early}) >= min_outlets:
            qualifying.append(StoryGroup(group.story_key, early))
    return qualifying


# --------------------------------------------------------------------------------------------------
# Rule types and their registry
# --------------------------------------------------------------------------------------------------


class RuleParams(BaseModel):
    """Base of every rule type's parameters: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleType(ABC):
    """A kind of rule. Subclasses set `name`, `params_model`, and implement `evaluate`."""

    name: ClassVar[str]
    params_model: ClassVar[type[RuleParams]]
    description_vi: ClassVar[str]
    #: Filters the scope must NOT set, because the rule type sets them itself.
    reserved_filters: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, params: RuleParams) -> None:
        self.params = params

    @classmethod
    def from_raw(cls, raw: dict[str, Any] | None) -> RuleType:
        """Validate raw params (from YAML, UI or the database); raises `InvalidRuleParams`."""
        try:
            params = cls.params_model.model_validate(raw or {})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(params)'}: {e['msg']}" for e in exc.errors()
            )
            raise InvalidRuleParams(f"invalid params for rule type {cls.name!r}: {problems}") from None
        return cls(params)

    @abstractmethod
    def evaluate(self, backend: SearchBackend, scope: RuleScope, ctx: EvaluationContext) -> list[Finding]:
        """Query the index for this rule's evidence and return what should alert (before suppression)."""


class InvalidRuleParams(ValueError):
    """Rule parameters that do not fit the rule type; the message names the field."""


RULE_TYPES: dict[str, type[RuleType]] = {}


def register_rule_type(cls: type[RuleType]) -> type[RuleType]:
    """Class decorator: make a rule type available under `cls.name`."""
    if cls.name in RULE_TYPES:
        raise ValueError(f"rule type {cls.name!r} registered twice")
    RULE_TYPES[cls.name] = cls
    return cls


def rule_type_for(name: str, raw_params: dict[str, Any] | None) -> RuleType:
    """Instantiate a registered rule type; unknown names list the known ones."""
    try:
        cls = RULE_TYPES[name]
    except KeyError:
        known = ", ".join(sorted(RULE_TYPES))
        raise InvalidRuleParams(f"unknown rule type {name!r}; known types: {known}") from None
    return cls.from_raw(raw_params)


def _with(filters: SearchFilters, **changes: Any) -> SearchFilters:
    return replace(filters, **changes)


def _top_documents(backend: SearchBackend, scope: RuleScope, filters: SearchFilters) -> list[DocumentSummary]:
    result = backend.search(scope.query, filters, sort="date", limit=TOP_DOCUMENTS)
    return [DocumentSummary.of(h.document) for h in result.hits]


def _window(ctx: EvaluationContext, minutes: int) -> tuple[datetime, datetime]:
    return ctx.now - timedelta(minutes=minutes), ctx.now


class MatchParams(RuleParams):
    first_run_lookback_minutes: int = Field(
        60, ge=1, le=7 * 24 * 60, description="Look-back on the first run."
    )
    max_age_hours: float = Field(48, gt=0, description="Ignore newly fetched documents published longer ago.")
    lateness_minutes: int = Field(
        30,
        ge=0,
        le=24 * 60,
        description="Re-read this far behind the last run: documents reach the index late.",
    )


@register_rule_type
class MatchRule(RuleType):
    """Any new document matching the scope since the last run, one alert per story cluster."""

    name = "match"
    params_model = MatchParams
    description_vi = "Có bài mới khớp phạm vi theo dõi"
    reserved_filters = frozenset({"fetched_since"})

    def evaluate(self, backend: SearchBackend, scope: RuleScope, ctx: EvaluationContext) -> list[Finding]:
        params = self.params
        assert isinstance(params, MatchParams)
        # Overlap the previous run by `lateness_minutes` (a document is stamped when fetched but indexed
        # after NLP); the engine remembers alerted document ids per story, so the overlap never re-fires.
        since = (
            ctx.last_run_at - timedelta(minutes=params.lateness_minutes)
            if ctx.last_run_at
            else ctx.now - timedelta(minutes=params.first_run_lookback_minutes)
        )
        published_from = ctx.now - timedelta(hours=params.max_age_hours)
        own_from = scope.filters.date_from
        date_from = max(own_from, published_from) if own_from else published_from
        filters = _with(scope.filters, fetched_since=since, date_from=date_from)
        # Documents stamped after `now` belong to the next run (keeps re-runs at the same `now` stable).
        docs = [d for d in backend.scan(scope.query, filters) if d.fetched_at <= ctx.now]
        findings = []
        for group in group_by_story(docs):
            ids = [d.id for d in group.documents]
            lead = group.documents[0]
            outlets = sorted(group.outlets)
            findings.append(
                Finding(
                    key=group.story_key,
                    story_key=group.story_key,
                    title=lead.title or lead.url,
                    reason=f"{len(group.documents)} bài mới khớp phạm vi theo dõi, từ {len(outlets)} nguồn "
                    f"({', '.join(outlets)}).",
                    counts={"documents": len(group.documents), "outlets": len(outlets)},
                    documents=[DocumentSummary.of(d) for d in group.documents[:TOP_DOCUMENTS]],
                    fingerprint=fingerprint_of(self.name, group.story_key, *sorted(ids)),
                    evidence_ids=frozenset(ids),
                )
            )
        return findings


class ThresholdParams(RuleParams):
    min_count: int = Field(ge=1, description="Fire when at least this many documents match in the window.")
    window_minutes: int = Field(60, ge=1, le=31 * 24 * 60)


@register_rule_type
class ThresholdRule(RuleType):
    """At least N matching documents published in the last window."""

    name = "threshold"
    params_model = ThresholdParams
    description_vi = "Số bài vượt ngưỡng trong khung thời gian"
    reserved_filters = frozenset({"date_from", "date_to"})

    def evaluate(self, backend: SearchBackend, scope: RuleScope, ctx: EvaluationContext) -> list[Finding]:
        params = self.params
        assert isinstance(params, ThresholdParams)
        start, end = _window(ctx, params.window_minutes)
        filters = _with(scope.filters, date_from=start, date_to=end)
        count = backend.count(scope.query, filters)
        if not threshold_reached(count, params.min_count):
            return []
        return [
            Finding(
                key="scope",
                title=f"{count} bài trong {params.window_minutes} phút qua",
                reason=f"{count} bài khớp phạm vi trong {params.window_minutes} phút qua, "
                f"ngưỡng là {params.min_count}.",
                counts={"count": count, "min_count": params.min_count},
                documents=_top_documents(backend, scope, filters),
                fingerprint=fingerprint_of(self.name, start.isoformat(), end.isoformat(), count),
            )
        ]


class NegativeShareParams(RuleParams):
    min_share: float = Field(gt=0, lt=1, description="Fraction, e.g. 0.4 for 40 %.")
    min_documents: int = Field(10, ge=1, description="Never judge a share on fewer documents than this.")
    window_minutes: int = Field(24 * 60, ge=1, le=31 * 24 * 60)


@register_rule_type
class NegativeShareRule(RuleType):
    """Share of negative documents among matches above X % with at least N documents."""

    name = "negative_share"
    params_model = NegativeShareParams
    description_vi = "Tỷ lệ bài tiêu cực cao bất thường"
    reserved_filters = frozenset({"date_from", "date_to", "sentiment"})

    def evaluate(self, backend: SearchBackend, scope: RuleScope, ctx: EvaluationContext) -> list[Finding]:
        params = self.params
        assert isinstance(params, NegativeShareParams)
        start, end = _window(ctx, params.window_minutes)
        filters = _with(scope.filters, date_from=start, date_to=end)
        total = backend.count(scope.query, filters)
        if total < params.min_documents:
            return []
        negative_filters = _with(filters, sentiment="negative")
        negative = backend.count(scope.query, negative_filters)
        if not negative_share_exceeded(negative, total, params.min_share, params.min_documents):
            return []
        share = negative / total
        return [
            Finding(
                key="scope",
                title=f"Tỷ lệ tiêu cực {share:.0%} ({negative}/{total} bài)",
                reason=f"{negative}/{total} bài ({share:.0%}) mang sắc thái tiêu cực trong "
                f"{params.window_minutes} phút qua, vượt mức {params.min_share:.0%}.",
                counts={"negative": negative, "total": total, "share": round(share, 4)},
                documents=_top_documents(backend, scope, negative_filters),
                fingerprint=fingerprint_of(self.name, start.isoformat(), end.isoformat(), negative, total),
            )
        ]


class SpikeParams(RuleParams):
    window_minutes: int = Field(60, ge=5, le=24 * 60)
    baseline_days: int = Field(14, ge=7, le=28, description="Same hour-of-day on each of the previous days.")
    k: float = Field(3.0, ge=1.0, description="How many standard deviations above the mean is a spike.")
    min_count: int = Field(5, ge=2, description="Never a spike below this many documents (0 vs 1 never).")


@register_rule_type
class SpikeRule(RuleType):
    """Volume in the last window vs mean + k·σ of the same window on each of the previous days."""

    name = "spike"
    params_model = SpikeParams
    description_vi = "Lượng bài tăng đột biến so với cùng giờ các ngày trước"
    reserved_filters = frozenset({"date_from", "date_to"})

    def evaluate(self, backend: SearchBackend, scope: RuleScope, ctx: EvaluationContext) -> list[Finding]:
        params = self.params
        assert isinstance(params, SpikeParams)
        start, end = _window(ctx, params.window_minutes)
        filters = _with(scope.filters, date_from=start, date_to=end)
        current = backend.count(scope.query, filters)
        if current < params.min_count:
            return []  # cheap exit: the baseline cannot matter
        baseline = _baseline_counts(backend, scope, start, end, params.baseline_days)
        verdict = spike_verdict(current, baseline, params.k, params.min_count)
        if not verdict.fired:
            return []
        return [
            Finding(
                key="scope",
                title=f"Đột biến: {current} bài/{params.window_minutes} phút (thường {verdict.mean:.1f})",
                reason=f"{current} bài trong {params.window_minutes} phút qua, so với trung bình "
                f"{verdict.mean:.1f} ± {verdict.stdev:.1f} cùng khung giờ {params.baseline_days} ngày trước "
                f"(ngưỡng {verdict.threshold:.1f}).",
                counts={
                    "current": current,
                    "baseline_mean": round(verdict.mean, 3),
                    "baseline_stdev": round(verdict.stdev, 3),
                    "threshold": round(verdict.threshold, 3),
                },
                documents=_top_documents(backend, scope, filters),
                fingerprint=fingerprint_of(self.name, start.isoformat(), end.isoformat(), current),
            )
        ]


def _floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _baseline_counts(
    backend: SearchBackend, scope: RuleScope, start: datetime, end: datetime, days: int
) -> list[float]:
    """The same window on each of the previous `days` days, from ONE hourly histogram (not `days`
    counts): a cycle of many spike rules over a large index stays within its time budget."""
    span_from = _floor_hour(start - timedelta(days=days))
    span_to = _floor_hour(end - timedelta(days=1)) + timedelta(hours=1)
    histogram = backend.date_histogram(
        "hour", scope.query, _with(scope.filters, date_from=span_from, date_to=span_to)
    )
    hourly = {bucket.astimezone(UTC): count for bucket, count in histogram}
    return same_window_counts(hourly, start, end, days)


def same_window_counts(hourly: dict[datetime, int], start: datetime, end: datetime, days: int) -> list[float]:
    """Counts in [start − d days, end − d days] for d = 1..days from hourly buckets (UTC hour starts).

    Exact when the window starts and ends on the hour; otherwise the two edge hours are pro-rated by
    their overlap (documents assumed spread evenly within an hour) — a baseline is a statistic anyway.
    """
    hour = timedelta(hours=1)
    counts = []
    for d in range(1, days + 1):
        lo, hi = start - timedelta(days=d), end - timedelta(days=d)
        total = 0.0
        bucket = _floor_hour(lo)
        while bucket < hi:
            overlap = min(bucket + hour, hi) - max(bucket, lo)
            total += hourly.get(bucket, 0) * (overlap / hour)
            bucket += hour
        counts.append(total)
    return counts


class NewStoryParams(RuleParams):
    min_outlets: int = Field(3, ge=2, description="Distinct sources (đầu báo) carrying the story.")
    within_hours: float = Field(6, gt=0, le=72)


@register_rule_type
class NewStoryRule(RuleType):
    """A story cluster first seen recently that reached M outlets within T hours; fires once per story."""

    name = "new_story"
    params_model = NewStoryParams
    description_vi = "Tin mới được nhiều đầu báo đưa"
    reserved_filters = frozenset({"date_from", "date_to"})

    def evaluate(self, backend: SearchBackend, scope: RuleScope, ctx: EvaluationContext) -> list[Finding]:
        params = self.params
        assert isinstance(params, NewStoryParams)
        # Look back 2T so a cluster that started just before the window is seen whole, then keep only
        # clusters whose first document is within T (i.e. still new).
        horizon = timedelta(hours=params.within_hours)
        filters = _with(scope.filters, date_from=ctx.now - 2 * horizon, date_to=ctx.now)
        candidates = _candidate_story_documents(backend, scope, filters, params.min_outlets)
        docs = [d for d in candidates if d.fetched_at <= ctx.now]
        findings = []
        for group in stories_reaching_outlets(docs, params.min_outlets, params.within_hours):
            first = min(_doc_time(d) for d in group.documents)
            if first < ctx.now - horizon:
                continue
            outlets = sorted(group.outlets)
            lead = group.documents[-1]  # the earliest copy names the story
            findings.append(
                Finding(
                    key=group.story_key,
                    story_key=group.story_key,
                    title=lead.title or lead.url,
                    reason=f"Tin được {len(outlets)} nguồn đưa trong vòng {params.within_hours:g} giờ "
                    f"({', '.join(outlets)}).",
                    counts={"outlets": len(outlets), "documents": len(group.documents)},
                    documents=[DocumentSummary.of(d) for d in group.documents[:TOP_DOCUMENTS]],
                    # Same story → same fingerprint: a story alerts once, however many more outlets join.
                    fingerprint=fingerprint_of(self.name, group.story_key),
                )
            )
        return findings


#: Clusters listed by one aggregation before falling back to reading the whole window.
MAX_CANDIDATE_CLUSTERS = 2000
_CLUSTERS_PER_QUERY = 200


def _candidate_story_documents(
    backend: SearchBackend, scope: RuleScope, filters: SearchFilters, min_outlets: int
) -> Iterable[Document]:
    """The window's documents of clusters with at least `min_outlets` documents (a story on M outlets
    has at least M copies): one aggregation finds them, so only their copies are read, not the whole
    window. Falls back to the whole window when the clusters are too many to list."""
    counts = backend.terms("cluster_id", scope.query, filters, size=MAX_CANDIDATE_CLUSTERS)
    candidates = [cluster for cluster, count in counts if count >= min_outlets]
    listable = all(re.fullmatch(r'[^"\\\s]+', c) for c in candidates)
    if (len(counts) == MAX_CANDIDATE_CLUSTERS and counts[-1][1] >= min_outlets) or not listable:
        yield from backend.scan(scope.query, filters)
        return
    for start in range(0, len(candidates), _CLUSTERS_PER_QUERY):
        clause = " OR ".join(f'cluster_id:"{c}"' for c in candidates[start : start + _CLUSTERS_PER_QUERY])
        query = f"({scope.query}) AND ({clause})" if scope.query.strip() else clause
        yield from backend.scan(query, filters)


def silence_is_unusual(
    silence: timedelta, min_silence: timedelta, active_days: int, history_days: int, min_active_share: float
) -> bool:
    """Silent-source rule (nguồn im lặng): quiet for at least `min_silence`, while on most previous days
    (≥ `min_active_share`) the source DID publish in the same stretch of the day. Nightly lulls that
    happen every day are therefore normal; a quiet working morning is not."""
    if silence < min_silence or history_days <= 0:
        return False
    return active_days / history_days >= min_active_share


def _active_days(
    backend: SearchBackend, scope: RuleScope, source: str, now: datetime, silence: timedelta, days: int
) -> int:
    """On how many of the previous `days` the source published in the same-length stretch of the day."""
    active = 0
    for d in range(1, days + 1):
        end = now - timedelta(days=d)
        # Strictly after the same time of day as the last item, so that item's daily twin does not count.
        start = end - silence + timedelta(seconds=1)
        filters = _with(scope.filters, source=source, date_from=start, date_to=end)
        active += backend.count(scope.query, filters) > 0
    return active


class SilentSourceParams(RuleParams):
    history_days: int = Field(14, ge=3, le=60)
    min_silence_hours: float = Field(3, ge=0.5, le=24 * 7)
    min_active_share: float = Field(
        0.8, gt=0, le=1, description="Share of previous days active at this time."
    )
    min_history_documents: int = Field(
        10, ge=1, description="Sources with fewer items are too irregular to judge."
    )
    max_sources: int = Field(500, ge=1, le=5000)


@register_rule_type
class SilentSourceRule(RuleType):
    """Source health: a source with no new items for longer than it usually goes quiet at this time."""

    name = "silent_source"
    params_model = SilentSourceParams
    description_vi = "Nguồn tin ngừng có bài mới bất thường"
    reserved_filters = frozenset({"date_from", "date_to", "source"})

    def evaluate(self, backend: SearchBackend, scope: RuleScope, ctx: EvaluationContext) -> list[Finding]:
        params = self.params
        assert isinstance(params, SilentSourceParams)
        history = timedelta(days=params.history_days)
        min_silence = timedelta(hours=params.min_silence_hours)
        window = _with(scope.filters, date_from=ctx.now - history, date_to=ctx.now)
        # Sources with an item inside the last `min_silence` are not silent: one aggregation rules them
        # all out, so only the (few) quiet sources need their latest item and history looked up.
        recent = _with(scope.filters, date_from=ctx.now - min_silence + timedelta(seconds=1), date_to=ctx.now)
        active_now = {s for s, _ in backend.terms("source", scope.query, recent, size=params.max_sources)}
        findings = []
        for source, count in backend.terms("source", scope.query, window, size=params.max_sources):
            if count < params.min_history_documents or source in active_now:
                continue
            latest = backend.search(scope.query, _with(window, source=source), sort="date", limit=1).hits
            if not latest:
                continue
            last_seen = _doc_time(latest[0].document)
            silence = ctx.now - last_seen
            if silence < min_silence:
                continue
            active_days = _active_days(backend, scope, source, ctx.now, silence, params.history_days)
            if not silence_is_unusual(
                silence, min_silence, active_days, params.history_days, params.min_active_share
            ):
                continue
            hours = silence.total_seconds() / 3600
            findings.append(
                Finding(
                    key=f"source:{source}",
                    title=f"Nguồn {source} không có bài mới {hours:.1f} giờ",
                    reason=f"Nguồn {source} im lặng {hours:.1f} giờ (bài gần nhất lúc "
                    f"{last_seen.isoformat()}), trong khi {active_days}/{params.history_days} ngày trước "
                    "đó có bài trong cùng khoảng giờ.",
                    counts={
                        "silence_hours": round(hours, 2),
                        "active_days": active_days,
                        "history_days": params.history_days,
                    },
                    documents=[DocumentSummary.of(latest[0].document)],
                    # One alert per silence episode: the same last item means the same silence.
                    fingerprint=fingerprint_of(self.name, source, last_seen.isoformat()),
                )
            )
        return findings


def check_scope_for(rule_type: type[RuleType], filters: SearchFilters) -> None:
    """Reject filters a rule type sets itself (e.g. a sentiment filter on a negative-share rule)."""
    clashing = sorted(f for f in rule_type.reserved_filters if getattr(filters, f) is not None)
    if clashing:
        raise InvalidRuleParams(
            f"rule type {rule_type.name!r} sets {', '.join(clashing)} itself; remove it from the filters"
        )
