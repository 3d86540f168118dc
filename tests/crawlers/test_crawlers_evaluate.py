"""Quality floor on the gold pages: a change to extraction may not fall below these."""

from pathlib import Path

from crawlers.evaluate import compare


def test_extraction_floor_and_beats_trafilatura_alone(pages_dir: Path) -> None:
    scores = compare(pages_dir)
    ours, baseline = scores["duluan"], scores["trafilatura"]
    assert ours.pages == 13
    assert ours.recall == 1.0, ours.misses
    assert ours.without_leaked == 0, ours.leaks
    assert ours.titles_exact == 13
    assert ours.f1 >= baseline.f1
    assert baseline.without_leaked > 0, "the gold set still exercises the related-article boxes"
