"""The leaders' daily digest (bản tin tổng hợp hằng ngày).

`build_digest` reads one local day from the index (one scan of the day plus a few counts) and reduces it
with pure functions to plain numbers and lists; `render_digest_html` turns those into a self-contained
HTML page (charts embedded as PNG data URIs) and `write_digest` stores it atomically.
Everything that comes from crawled documents is escaped by Jinja2's autoescape.
"""

from __future__ import annotations

import base64
import io
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from alerts.links import safe_url
from alerts.rules import group_by_story
from index.backend import SearchBackend, SearchFilters
from schema import SENTIMENTS, TOPICS, Document

#: Topic label for documents the classifier left empty.
UNCLASSIFIED = "Chưa phân loại"
WEEKDAYS_VI = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ Nhật")
SENTIMENT_COLOURS = {"negative": "#c0392b", "neutral": "#95a5a6", "positive": "#27ae60"}


@dataclass(frozen=True)
class Headline:
    """Headline numbers (số liệu chính) of the day and their change vs the previous day."""

    documents: int
    outlets: int
    negative: int
    previous_documents: int
    previous_negative: int

    @property
    def negative_share(self) -> float:
        return self.negative / self.documents if self.documents else 0.0

    @property
    def previous_negative_share(self) -> float:
        return self.previous_negative / self.previous_documents if self.previous_documents else 0.0

    @property
    def documents_change(self) -> float | None:
        """Relative change in volume vs the previous day; None when the previous day had nothing."""
        if not self.previous_documents:
            return None
        return (self.documents - self.previous_documents) / self.previous_documents

    @property
    def negative_share_change_points(self) -> float:
        """Change of the negative share in percentage points."""
        return (self.negative_share - self.previous_negative_share) * 100


@dataclass(frozen=True)
class StorySummary:
    """One story (cụm tin) with its lead document and how widely it was carried."""

    story_key: str
    title: str
    url: str
    source: str
    published_at: datetime
    documents: int
    outlets: int
    sentiment: str | None
    province_relevance: float


@dataclass(frozen=True)
class TopicStories:
    topic: str | None
    topic_name: str
    documents: int
    stories: list[StorySummary]


@dataclass(frozen=True)
class DaySentiment:
    day: date
    counts: dict[str, int]


@dataclass(frozen=True)
class Digest:
    """Everything the digest shows, as plain data (renderers add nothing but layout)."""

    day: date
    timezone: str
    province: str
    generated_at: datetime
    headline: Headline
    topics: list[TopicStories]
    province_negative: list[StorySummary]
    top_sources: list[tuple[str, int]]
    top_entities: list[tuple[str, int]]
    topic_volume: list[tuple[str, int]]
    sentiment_trend: list[DaySentiment] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------
# Pure reductions over one day's documents
# --------------------------------------------------------------------------------------------------


def day_bounds(day: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """[local midnight, next local midnight) of `day`."""
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    following = day + timedelta(days=1)
    return start, datetime(following.year, following.month, following.day, tzinfo=tz)


def headline_numbers(docs: Sequence[Document], previous_documents: int, previous_negative: int) -> Headline:
    return Headline(
        documents=len(docs),
        outlets=len({d.source for d in docs}),
        negative=sum(1 for d in docs if d.sentiment == "negative"),
        previous_documents=previous_documents,
        previous_negative=previous_negative,
    )


def _summaries(docs: Iterable[Document]) -> list[StorySummary]:
    out = []
    for group in group_by_story(docs):
        earliest = min(group.documents, key=lambda d: (d.published_at or d.fetched_at, d.id))
        out.append(
            StorySummary(
                story_key=group.story_key,
                title=earliest.title or earliest.url,
                url=earliest.url,
                source=earliest.source,
                published_at=earliest.published_at or earliest.fetched_at,
                documents=len(group.documents),
                outlets=len(group.outlets),
                sentiment=Counter(d.sentiment for d in group.documents).most_common(1)[0][0],
                province_relevance=max(d.province_relevance for d in group.documents),
            )
        )
    return out


def top_stories_by_topic(docs: Sequence[Document], per_topic: int = 3) -> list[TopicStories]:
    """Topics by volume, each with its biggest stories (most outlets, then most copies)."""
    by_topic: dict[str | None, list[Document]] = {}
    for doc in docs:
        by_topic.setdefault(doc.topic, []).append(doc)
    topics = []
    for topic, topic_docs in by_topic.items():
        stories = sorted(_summaries(topic_docs), key=lambda s: (-s.outlets, -s.documents, s.story_key))
        name = TOPICS.get(topic, topic) if topic else UNCLASSIFIED
        topics.append(TopicStories(topic, name, len(topic_docs), stories[:per_topic]))
    topics.sort(key=lambda t: (-t.documents, t.topic_name))
    return topics


def province_negative_items(
    docs: Sequence[Document], min_relevance: float, limit: int = 10
) -> list[StorySummary]:
    """Negative stories about the province (tin tiêu cực liên quan đến tỉnh), most relevant first."""
    negative = [d for d in docs if d.sentiment == "negative" and d.province_relevance >= min_relevance]
    stories = sorted(_summaries(negative), key=lambda s: (-s.province_relevance, -s.outlets, s.story_key))
    return stories[:limit]


def top_sources(docs: Sequence[Document], limit: int = 10) -> list[tuple[str, int]]:
    return sorted(Counter(d.source for d in docs).items(), key=lambda kv: (-kv[1], kv[0]))[:limit]


def top_entities(docs: Sequence[Document], limit: int = 10) -> list[tuple[str, int]]:
    """Entities by the number of documents naming them (once per document)."""
    counts = Counter(name for d in docs for name in {e.canonical for e in d.entities if e.canonical.strip()})
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]


def topic_volume(topics: Sequence[TopicStories]) -> list[tuple[str, int]]:
    return [(t.topic_name, t.documents) for t in topics]


# --------------------------------------------------------------------------------------------------
# Reading the index
# --------------------------------------------------------------------------------------------------


def build_digest(
    backend: SearchBackend,
    day: date,
    tz: ZoneInfo,
    province: str,
    *,
    min_province_relevance: float = 0.5,
    stories_per_topic: int = 3,
    trend_days: int = 7,
    now: datetime | None = None,
) -> Digest:
    """Collect the digest of local day `day` in `tz` for the monitored `province`."""
    start, end = day_bounds(day, tz)
    docs = list(backend.scan("", SearchFilters(date_from=start, date_to=end)))
    previous = SearchFilters(date_from=start - timedelta(days=1), date_to=start)
    previous_total = backend.count("", previous)
    previous_negative = backend.count(
        "", SearchFilters(date_from=previous.date_from, date_to=start, sentiment="negative")
    )
    topics = top_stories_by_topic(docs, stories_per_topic)
    trend = []
    for offset in range(trend_days - 1, -1, -1):
        trend_day = day - timedelta(days=offset)
        day_from, day_to = day_bounds(trend_day, tz)
        buckets = dict(
            backend.terms("sentiment", "", SearchFilters(date_from=day_from, date_to=day_to), size=10)
        )
        trend.append(DaySentiment(trend_day, {s: buckets.get(s, 0) for s in SENTIMENTS}))
    return Digest(
        day=day,
        timezone=tz.key,
        province=province,
        generated_at=now or datetime.now(UTC),
        headline=headline_numbers(docs, previous_total, previous_negative),
        topics=topics,
        province_negative=province_negative_items(docs, min_province_relevance),
        top_sources=top_sources(docs),
        top_entities=top_entities(docs),
        topic_volume=topic_volume(topics),
        sentiment_trend=trend,
    )


# --------------------------------------------------------------------------------------------------
# Charts and HTML
# --------------------------------------------------------------------------------------------------


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(figure)
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def sentiment_chart(trend: Sequence[DaySentiment]) -> bytes:
    """Stacked daily bars of negative / neutral / positive documents (xu hướng sắc thái)."""
    figure = Figure(figsize=(7, 3))
    axes = figure.add_subplot()
    labels = [f"{d.day:%d/%m}" for d in trend]
    bottom = [0] * len(trend)
    for code in ("negative", "neutral", "positive"):
        values = [d.counts.get(code, 0) for d in trend]
        axes.bar(labels, values, bottom=bottom, label=SENTIMENTS[code], color=SENTIMENT_COLOURS[code])
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axes.set_title("Sắc thái bài viết theo ngày")
    axes.set_ylabel("Số bài")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend(loc="upper left", fontsize="small")
    return _png(figure)


def topic_chart(volume: Sequence[tuple[str, int]]) -> bytes:
    """Horizontal bars of documents per topic (khối lượng theo chủ đề)."""
    figure = Figure(figsize=(7, max(2.0, 0.4 * len(volume) + 1)))
    axes = figure.add_subplot()
    names = [name for name, _ in reversed(volume)]
    counts = [count for _, count in reversed(volume)]
    axes.barh(names, counts, color="#2e86c1")
    axes.set_title("Số bài theo chủ đề")
    axes.set_xlabel("Số bài")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _png(figure)


def format_number(value: float) -> str:
    """Vietnamese grouping: 12.345 (dot for thousands)."""
    return f"{value:,.0f}".replace(",", ".")


def format_percent(value: float, digits: int = 1) -> str:
    """Vietnamese decimals: 12,5%."""
    return f"{value * 100:.{digits}f}".replace(".", ",") + "%"


def format_change(value: float | None) -> str:
    if value is None:
        return "—"
    sign = "+" if value > 0 else ""
    return sign + format_percent(value)


def format_points(value: float) -> str:
    sign = "+" if value > 0 else ""
    return f"{sign}{value:.1f}".replace(".", ",") + " điểm %"


def vietnamese_date(day: date) -> str:
    return f"{WEEKDAYS_VI[day.weekday()]}, {day:%d/%m/%Y}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("alerts", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        number=format_number,
        percent=format_percent,
        change=format_change,
        points=format_points,
        safe_url=safe_url,
        vi_date=vietnamese_date,
        sentiment_vi=lambda code: SENTIMENTS.get(code or "", "—"),
    )
    return env


@dataclass(frozen=True)
class DigestCharts:
    """The digest's charts as PNG bytes (None when there is nothing to draw)."""

    sentiment: bytes | None
    topics: bytes | None


def draw_charts(digest: Digest) -> DigestCharts:
    return DigestCharts(
        sentiment=sentiment_chart(digest.sentiment_trend) if digest.sentiment_trend else None,
        topics=topic_chart(digest.topic_volume) if digest.topic_volume else None,
    )


def _render(digest: Digest, sentiment_src: str | None, topic_src: str | None) -> str:
    tz = ZoneInfo(digest.timezone)
    template = _environment().get_template("digest.html.j2")
    return template.render(
        digest=digest,
        local_time=lambda moment: moment.astimezone(tz).strftime("%H:%M %d/%m"),
        sentiment_chart=sentiment_src,
        topic_chart=topic_src,
    )


def render_digest_html(digest: Digest, charts: DigestCharts | None = None) -> str:
    """A self-contained HTML page (inline CSS, charts as data URIs) for the archive and the browser."""
    drawn = charts or draw_charts(digest)
    return _render(
        digest,
        png_data_uri(drawn.sentiment) if drawn.sentiment else None,
        png_data_uri(drawn.topics) if drawn.topics else None,
    )


def digest_subject(digest: Digest) -> str:
    return f"Bản tin dư luận {digest.province} – {vietnamese_date(digest.day)}"


def build_digest_email(
    digest: Digest,
    sender: str,
    recipients: Sequence[str],
    *,
    pdf: bytes | None = None,
    charts: DigestCharts | None = None,
) -> EmailMessage:
    """The digest as an HTML e-mail: charts as inline CID images (mail clients block data URIs),
    a plain-text alternative carrying the headline numbers, and the PDF attached when given."""
    charts = charts or draw_charts(digest)
    domain = sender.rpartition("@")[2] or "localhost"
    cids = {name: make_msgid(f"bieu-do-{name}", domain=domain) for name in ("sentiment", "topics")}
    html = _render(
        digest,
        f"cid:{cids['sentiment'][1:-1]}" if charts.sentiment else None,
        f"cid:{cids['topics'][1:-1]}" if charts.topics else None,
    )
    mail = EmailMessage()
    mail["Subject"] = digest_subject(digest)
    mail["From"] = sender
    if recipients:
        mail["To"] = ", ".join(recipients)
    mail["Date"] = format_datetime(digest.generated_at)
    mail["Message-ID"] = make_msgid(f"ban-tin-{digest.day.isoformat()}", domain=domain)
    h = digest.headline
    mail.set_content(
        f"{digest_subject(digest)}\n\n"
        f"Số bài: {format_number(h.documents)} ({format_change(h.documents_change)} so với hôm trước)\n"
        f"Số nguồn: {format_number(h.outlets)}\n"
        f"Tỷ lệ tiêu cực: {format_percent(h.negative_share)}\n\n"
        "Xem bản đầy đủ trong thư HTML hoặc trên hệ thống Duluan.\n"
    )
    mail.add_alternative(html, subtype="html")
    html_part = mail.get_body(("html",))
    assert html_part is not None
    for name, png in (("sentiment", charts.sentiment), ("topics", charts.topics)):
        if png:
            html_part.add_related(png, maintype="image", subtype="png", cid=cids[name])
    if pdf is not None:
        mail.add_attachment(
            pdf, maintype="application", subtype="pdf", filename=digest_filename(digest.day, "pdf")
        )
    return mail


def digest_filename(day: date, suffix: str = "html") -> str:
    return f"ban-tin-{day.isoformat()}.{suffix}"


# --------------------------------------------------------------------------------------------------
# PDF (WeasyPrint)
# --------------------------------------------------------------------------------------------------

#: DejaVu Sans covers every Vietnamese letter with its tone marks (ă â đ ê ô ơ ư + 5 tones, precomposed
#: and combining). It ships with matplotlib (a dependency), so the PDF never depends on system fonts.
PDF_FONT_FAMILY = "Duluan Sans"


def pdf_font_files() -> dict[tuple[str, str], Path]:
    """(weight, style) → the TrueType file used for that face in the PDF."""
    import matplotlib

    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return {
        ("normal", "normal"): fonts / "DejaVuSans.ttf",
        ("bold", "normal"): fonts / "DejaVuSans-Bold.ttf",
        ("normal", "italic"): fonts / "DejaVuSans-Oblique.ttf",
        ("bold", "italic"): fonts / "DejaVuSans-BoldOblique.ttf",
    }


def pdf_stylesheet() -> str:
    """Embedded fonts and print layout (A4, page numbers) on top of the HTML's own CSS."""
    faces = "\n".join(
        f"@font-face {{ font-family: '{PDF_FONT_FAMILY}'; src: url('{path.as_uri()}'); "
        f"font-weight: {weight}; font-style: {style}; }}"
        for (weight, style), path in pdf_font_files().items()
    )
    return (
        faces
        + f"""
@page {{ size: A4; margin: 16mm 14mm 18mm;
  @bottom-center {{ content: "Trang " counter(page) " / " counter(pages);
    font-family: '{PDF_FONT_FAMILY}'; font-size: 9pt; color: #666; }} }}
body {{ max-width: none; padding: 0; font-size: 11pt; }}
body, body * {{ font-family: '{PDF_FONT_FAMILY}', sans-serif !important; }}
h2 {{ break-after: avoid; }}
li, tr, img.chart {{ break-inside: avoid; }}
a {{ color: #1a5276; text-decoration: none; }}
"""
    )


def render_digest_pdf(digest: Digest, charts: DigestCharts | None = None) -> bytes:
    """The digest as an A4 PDF: same content as the HTML, charts embedded, Vietnamese fonts embedded.

    Only `data:` (the charts) and local `file:` URLs (the fonts) are fetched: rendering never touches
    the network, whatever links the crawled documents carry.
    """
    from weasyprint import CSS, HTML
    from weasyprint.text.fonts import FontConfiguration
    from weasyprint.urls import URLFetcher

    missing = [str(p) for p in pdf_font_files().values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"PDF fonts missing: {', '.join(missing)}; reinstall matplotlib")
    html = render_digest_html(digest, charts)
    fetcher = URLFetcher(allowed_protocols=("data", "file"))
    font_config = FontConfiguration()
    stylesheet = CSS(string=pdf_stylesheet(), font_config=font_config, url_fetcher=fetcher)
    document = HTML(string=html, url_fetcher=fetcher, base_url=None)
    pdf = document.write_pdf(stylesheets=[stylesheet], font_config=font_config)
    assert isinstance(pdf, bytes)
    return pdf


def _atomic_write_bytes(target: Path, data: bytes) -> None:
    handle, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class DigestArchive:
    """The archived files of one day's digest (lưu trữ bản tin)."""

    html: Path
    pdf: Path | None
    email: Path | None


def archive_digest(
    digest: Digest, out_dir: Path, *, pdf: bool = True, email_sender: str | None = None
) -> DigestArchive:
    """Write `ban-tin-DAY.html`, and `.pdf` and the e-mail to send (`.eml`, the PDF attached) when
    asked; each atomically, with the charts drawn once for all three."""
    out_dir.mkdir(parents=True, exist_ok=True)
    charts = draw_charts(digest)
    html_path = out_dir / digest_filename(digest.day)
    _atomic_write_bytes(html_path, render_digest_html(digest, charts).encode("utf-8"))
    pdf_path = eml_path = None
    pdf_bytes = render_digest_pdf(digest, charts) if pdf else None
    if pdf_bytes is not None:
        pdf_path = out_dir / digest_filename(digest.day, "pdf")
        _atomic_write_bytes(pdf_path, pdf_bytes)
    if email_sender is not None:
        mail = build_digest_email(digest, email_sender, [], pdf=pdf_bytes, charts=charts)
        eml_path = out_dir / digest_filename(digest.day, "eml")
        _atomic_write_bytes(eml_path, bytes(mail))
    return DigestArchive(html_path, pdf_path, eml_path)


def write_digest(digest: Digest, out_dir: Path) -> Path:
    """Render and write `ban-tin-YYYY-MM-DD.html` atomically (temp file + rename): readers never
    see half a page, and a crash leaves the previous version intact."""
    html = render_digest_html(digest)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / digest_filename(digest.day)
    handle, temp_name = tempfile.mkstemp(dir=out_dir, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(html)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return target
