"""SIGKILL the crawl → enrich → index pipeline at seeded random points, restart, lose nothing.

Each scenario is one service home crawled from the recording demo site (RSS + sitemap sources, 13
real article pages) by real processes forked from `crawl_zygote.py`; each runs the service's own
`crawl_sources`. Kill points are drawn from a seeded RNG: either on the n-th request the site
receives (the crawler is mid-fetch) or after a random delay (mid-extract, mid-enrich, mid-index
write, mid-state write). After the kills one run goes to completion. Then:

* every article page the site served is in the index exactly once (by id and by canonical URL),
  enriched, and its URL is in the crawl frontier's seen set;
* kills happen mid-fetch (on the n-th request), after a random delay, or right after the frontier
  advanced (between the index commit of one batch and the next);
* no run fetched an article that was already in the seen set when it started (the frontier
  resumes instead of refetching everything), and the completing run fetched exactly the rest;
* after every kill the index opens, holds no duplicates, and the SQLite files pass integrity_check.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from crawlers.urls import normalize_url
from index.tantivy_backend import TantivyIndex
from tests.reliability.conftest import (
    CrawlZygote,
    RecordingSite,
    child_env,
    integrity,
    kill_after,
    kill_quietly,
    prepare_home,
    seen_url_keys,
    wait_for,
)

SEED = 20261128
SCENARIOS = 4
KILLS_PER_SCENARIO = 5  # 4 x 5 = 20 landed SIGKILLs, plus the CLI one below
#: Scenario 0 crawls the feed and the sitemap (every article reached twice per run); the others the
#: feed only, which halves the cost of a run.
SOURCES = ["demo-rss", "demo-sitemap"]


def _check_index(home: Path) -> list:
    index = TantivyIndex(home / "index")
    try:
        docs = list(index.scan(""))
        assert index.count("") == len(docs)
    finally:
        index.close()
    ids = Counter(d.id for d in docs)
    canonical = Counter(d.canonical_url for d in docs)
    assert not [i for i, n in ids.items() if n > 1], "a document id is indexed twice"
    assert not [u for u, n in canonical.items() if n > 1], "a canonical URL is indexed twice"
    return docs


def _check_sqlite(home: Path) -> None:
    for path in (home / "duluan.db", home / "crawl" / "crawl_state.sqlite"):
        if path.exists():
            assert integrity(path) == "ok", path


def _articles_fetched(site: RecordingSite, run: list[str]) -> set[str]:
    return {p for p in run if p in site.article_paths}


def _final_checks(site: RecordingSite, home: Path, fetched_ever: set[str]) -> None:
    docs = _check_index(home)
    _check_sqlite(home)
    # Every article page that was ever served is indexed — exactly once (checked above) — ...
    assert fetched_ever == site.article_paths
    assert {urlpath(d.url) for d in docs} == site.article_paths
    assert len(docs) == len(site.article_paths)
    # ... enriched before indexing, and recorded in the frontier.
    assert all(d.topic and d.sentiment for d in docs), "a document reached the index without NLP fields"
    seen = seen_url_keys(home)
    assert {normalize_url(site.base_url + p) for p in site.article_paths} <= seen


def urlpath(url: str) -> str:
    return "/" + url.split("/", 3)[3]


@pytest.mark.parametrize("scenario", range(SCENARIOS))
def test_sigkill_at_random_points_loses_and_duplicates_nothing(
    scenario: int, zygote: CrawlZygote, site: RecordingSite, tmp_path: Path
) -> None:
    rng = random.Random(SEED + scenario)
    home = tmp_path / "home"
    prepare_home(home, site)
    batch_size = rng.choice([1, 2, 3])
    job = {
        "home": str(home),
        "sources": SOURCES if scenario == 0 else SOURCES[:1],
        "batch_size": batch_size,
        "flush_interval_s": 0.2,
        "report": str(tmp_path / "report.json"),
    }
    fetched_ever: set[str] = set()
    landed, attempts, resumed_runs = 0, 0, 0
    while landed < KILLS_PER_SCENARIO:
        attempts += 1
        # A timer kill misses when the run ends first (more often on a fast, idle machine); misses are
        # allowed, but not so many that the kill points stop exercising the crawl.
        assert attempts <= 5 * KILLS_PER_SCENARIO, "kill points keep missing the crawl"
        seen_before = seen_url_keys(home)
        unseen = [p for p in site.article_paths if normalize_url(site.base_url + p) not in seen_before]
        # The first kill of a scenario waits for the frontier to advance, so later runs must resume.
        mode = "frontier" if attempts == 1 else rng.choice(["request", "timer", "frontier"])
        if len(unseen) <= 1 and mode != "request":
            # Nearly everything is seen: a run is over in a blink, so kill on a request it always
            # makes (robots.txt or the feed) instead of after a delay.
            mode = "request"
        cancel = None
        if mode == "frontier" and len(unseen) > 1:
            site.access.new_run()
            pid = zygote.start(job)
            target = len(seen_before) + rng.randint(1, len(unseen) - 1)

            def advanced(n: int = target) -> bool:
                return len(seen_url_keys(home)) >= n

            try:
                wait_for(advanced, 60, f"{target} seen URLs")
            finally:
                kill_quietly(pid)
        elif mode == "request":
            # robots.txt + feed + sitemap, then the articles still unseen (each source may ask once).
            last = 2 if len(unseen) <= 1 else 3 + len(unseen)
            site.access.new_run(kill_on_request=rng.randint(1, last))
            pid = zygote.start(job)
            site.access.set_pid(pid)
        else:
            site.access.new_run()
            pid = zygote.start(job)
            cancel = kill_after(pid, rng.uniform(0.05, 2.5))
        code = zygote.wait(pid)
        if cancel:
            cancel()
        run = site.access.runs[-1]
        fetched_now = _articles_fetched(site, run)
        fetched_ever |= fetched_now
        # The frontier: nothing already seen when the run started was fetched again.
        again = {p for p in fetched_now if normalize_url(site.base_url + p) in seen_before}
        assert not again, f"run refetched pages already in the frontier: {sorted(again)[:3]}"
        if seen_before and unseen:
            resumed_runs += 1
        if code == -signal.SIGKILL:
            landed += 1
            _check_index(home)  # opens after the kill (stale writer lock) and holds no duplicates
            _check_sqlite(home)
        else:
            assert code == 0, zygote.stderr_tail()

    # One more run, to completion: it fetches exactly what the frontier had not seen.
    seen_before = seen_url_keys(home)
    site.access.new_run()
    pid = zygote.start(job)
    assert zygote.wait(pid) == 0, zygote.stderr_tail()
    final = _articles_fetched(site, site.access.runs[-1])
    fetched_ever |= final
    expected = {p for p in site.article_paths if normalize_url(site.base_url + p) not in seen_before}
    assert final == expected
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["sources"]["demo-rss"]["finish_reason"] == "finished"
    _final_checks(site, home, fetched_ever)
    assert resumed_runs >= 1, "no run started from a partly filled frontier"


def test_duluan_crawl_cli_killed_mid_crawl_then_rerun(site: RecordingSite, tmp_path: Path) -> None:
    """The real command line (default batching): SIGKILL after the first article fetch, then rerun."""
    rng = random.Random(SEED - 1)
    home = tmp_path / "home"
    prepare_home(home, site)
    args = [sys.executable, "-m", "duluan", "crawl", "--source", "demo-rss"]
    env = child_env(home, DULUAN_LOG_LEVEL="WARNING")
    site.access.new_run()
    with (tmp_path / "killed.log").open("wb") as log:
        proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(
                lambda: bool(_articles_fetched(site, site.access.runs[-1])), 60, "the first article fetch"
            )
            time.sleep(rng.uniform(0.0, 0.5))
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the crawl finished before it could be killed"
    _check_index(home)
    _check_sqlite(home)
    seen_before = seen_url_keys(home)
    site.access.new_run()
    done = subprocess.run(
        args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    final = _articles_fetched(site, site.access.runs[-1])
    assert not {p for p in final if normalize_url(site.base_url + p) in seen_before}
    fetched_ever = set().union(*(_articles_fetched(site, run) for run in site.access.runs))
    _final_checks(site, home, fetched_ever)
