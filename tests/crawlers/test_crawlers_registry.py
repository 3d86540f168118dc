"""Source registry: seed YAML validation with precise errors, upsert/list on a real SQLite database."""

from pathlib import Path

import pytest
import sqlalchemy as sa

from crawlers.registry import (
    DEFAULT_SEED_FILE,
    SeedFileError,
    SourceKind,
    SourceSpec,
    get_source,
    list_sources,
    load_seed_yaml,
    metadata,
    set_enabled,
    upsert_sources,
)

NATIONAL = {"vnexpress", "tuoitre", "thanhnien", "dantri", "vietnamnet", "znews", "laodong", "nhandan",
            "baochinhphu", "vov", "vtv", "nld", "cafef"}  # fmt: skip


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    metadata.create_all(engine)
    return engine


def test_shipped_seed_has_national_and_provincial_outlets() -> None:
    specs = load_seed_yaml(DEFAULT_SEED_FILE)
    ids = {s.id for s in specs}
    assert ids >= NATIONAL
    assert {"baobinhphuoc", "binhphuoc-portal", "dongnai-portal"} <= ids
    names = " ".join(s.name for s in specs)
    assert "Bình Phước" in names and "Đồng Nai" in names
    assert all(s.start_urls and all(u.startswith("https://") for u in s.start_urls) for s in specs)
    news = [s for s in specs if s.source_type.value == "news"]
    assert {s.type for s in news} <= {SourceKind.rss, SourceKind.sitemap, SourceKind.listing}
    assert all(s.enabled for s in news)
    assert all(not s.enabled for s in specs if s.source_type.value != "news"), (
        "social/forum sources are opt-in"
    )
    social = {s.type for s in specs if s.source_type.value == "social"}
    assert {SourceKind.facebook, SourceKind.youtube, SourceKind.telegram} <= social


def test_upsert_then_list_round_trips_and_updates(engine: sa.Engine) -> None:
    specs = load_seed_yaml()
    assert upsert_sources(engine, specs) == len(specs)
    listed = list_sources(engine)
    assert [s.id for s in listed] == sorted(s.id for s in specs if s.enabled)
    assert len(list_sources(engine, enabled_only=False)) == len(specs)
    assert get_source(engine, "dantri") == next(s for s in specs if s.id == "dantri")

    changed = next(s for s in specs if s.id == "vnexpress").model_copy(update={"schedule": "every 5m"})
    upsert_sources(engine, [changed])
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM sources")).scalar() == len(specs)
    assert get_source(engine, "vnexpress").interval_minutes() == 5  # type: ignore[union-attr]

    assert set_enabled(engine, "cafef", False)
    assert "cafef" not in {s.id for s in list_sources(engine)}
    assert "cafef" in {s.id for s in list_sources(engine, enabled_only=False)}
    assert not set_enabled(engine, "khong-ton-tai", True)


def test_errors_name_file_entry_and_key(tmp_path: Path) -> None:
    seed = tmp_path / "sources.yaml"
    seed.write_text(
        "sources:\n"
        "  - id: tot\n    name: Tốt\n    type: rss\n    start_urls: [https://tot.vn/rss.xml]\n"
        "  - id: xau\n    name: Xấu\n    type: podcast\n    start_urls: [https://xau.vn/]\n"
        "  - id: thieu\n    name: Thiếu\n    type: rss\n"
        "  - id: lich\n    name: Lịch\n    type: listing\n    start_urls: [https://l.vn/]\n"
        "    schedule: sometimes\n"
        "  - id: tot\n    name: Trùng\n    type: rss\n    start_urls: [https://tot.vn/2.xml]\n",
        encoding="utf-8",
    )
    with pytest.raises(SeedFileError) as caught:
        load_seed_yaml(seed)
    message = str(caught.value)
    assert f"{seed}: entry #2 (id 'xau'): key 'type'" in message
    assert "entry #3 (id 'thieu')" in message and "start URL" in message
    assert "entry #4 (id 'lich'): key 'schedule'" in message
    assert "entry #5 (id 'tot'): key 'id': duplicate id" in message


HEAD = "sources:\n  - id: x\n    name: X\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sources: [\n  - id: x\n", "not valid YAML at line"),
        ("just a string", "top-level 'sources:' list"),
        (HEAD + "    type: rss\n    start_urls: [tuoitre.vn/rss]\n", "absolute http"),
        ("sources:\n  - id: X Y\n    name: X\n    type: rss\n    start_urls: [https://a.vn/]\n", "key 'id'"),
        (HEAD + "    type: rss\n    start_urls: [https://a.vn/]\n    colour: red\n", "key 'colour'"),
        (
            HEAD
            + "    type: listing\n    start_urls: [https://a.vn/]\n    site_rules: {link_allow: ['(x']}\n",
            "bad regex",
        ),
    ],
)
def test_bad_seed_files(tmp_path: Path, text: str, expected: str) -> None:
    seed = tmp_path / "bad.yaml"
    seed.write_text(text, encoding="utf-8")
    with pytest.raises(SeedFileError, match=expected.replace("(", r"\(")):
        load_seed_yaml(seed)


def test_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(SeedFileError, match="cannot read the seed file"):
        load_seed_yaml(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("schedule", "minutes"), [("every 30m", 30), ("2h", 120), ("1d", 1440), ("*/10 * * * *", 10)]
)
def test_schedules(schedule: str, minutes: int) -> None:
    spec = SourceSpec(
        id="x", name="X", type=SourceKind.rss, start_urls=["https://a.vn/rss"], schedule=schedule
    )
    assert spec.interval_minutes() == minutes


def test_every_family_needs_start_urls_and_api_ones_must_name_what_to_read() -> None:
    with pytest.raises(ValueError, match="needs at least one start URL"):
        SourceSpec.model_validate({"id": "voz", "name": "VOZ", "type": "xenforo", "source_type": "forum"})
    with pytest.raises(ValueError, match="needs at least one start URL"):
        SourceSpec.model_validate({"id": "yt", "name": "YouTube", "type": "youtube"})
    with pytest.raises(ValueError, match="search_query"):
        SourceSpec.model_validate(
            {"id": "yt", "name": "YouTube", "type": "youtube", "start_urls": ["https://www.youtube.com/feed"]}
        )
    with pytest.raises(ValueError, match="not a Facebook page"):
        SourceSpec.model_validate(
            {"id": "fb", "name": "FB", "type": "facebook", "start_urls": ["https://baodongnai.com.vn/"]}
        )


def test_social_and_forum_families_default_their_source_type() -> None:
    def source_type(kind: str, url: str, **extra: str) -> str:
        raw = {"id": "x", "name": "X", "type": kind, "start_urls": [url], **extra}
        return SourceSpec.model_validate(raw).source_type.value

    assert source_type("facebook", "https://www.facebook.com/baodongnai.vn") == "social"
    assert source_type("youtube", "https://www.youtube.com/@baodongnaitv") == "social"
    assert source_type("telegram", "https://t.me/s/baodongnai") == "social"
    assert source_type("xenforo", "https://voz.vn/f/17/") == "forum"
    assert source_type("rss", "https://vnexpress.net/rss/tin-moi-nhat.rss") == "news"
    assert source_type("telegram", "https://t.me/s/vnexpress", source_type="news") == "news", "explicit wins"
