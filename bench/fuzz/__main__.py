"""`python -m bench.fuzz TARGET --seconds N [--out DIR]`: run one atheris target for N seconds.

Seeds come from the project itself (README query examples, the bundled demo pages, sample URLs);
libFuzzer's crash files go to `--out` (default bench/out/fuzz, git-ignored). Exit code 0 when the
time ran out without a finding; libFuzzer's non-zero code and a crash file otherwise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
QUERY_SEEDS = [
    '"Bình Phước" AND topic:giao-thong',
    'binh phuoc -"bóng đá"',
    "source:vnexpress",
    "(sạt lở HOẶC ngập) VÀ KHÔNG topic:the-gioi",
    "date:2026-11-01..2026-11-27",
    "title:(đất* OR nhà) NEAR/3 ở",
]
URL_SEEDS = [
    "https://vnexpress.net/a-123.html?utm_source=x&id=2#top",
    "http://m.dantri.com.vn:80/xa-hoi/amp/b.htm",
    "https://[::1]:8080/",
]


def _seed_corpus(target: str, folder: Path) -> None:
    """Starting inputs: what real users and real pages send, so the fuzzer mutates from there."""
    seeds: list[tuple[str, bytes]] = [("query", q.encode()) for q in QUERY_SEEDS]
    seeds += [("urls", u.encode()) for u in URL_SEEDS]
    pages = sorted((REPO / "duluan" / "demo_site" / "pages" / "html").glob("*.html"))[:4]
    seeds += [("extract", p.read_bytes()[:20_000]) for p in pages]
    for n, (kind, data) in enumerate(seeds):
        if target == "all":
            data = bytes([("query", "extract", "urls").index(kind)]) + data
        elif kind != target:
            continue
        (folder / f"seed-{n}").write_bytes(data)


def main() -> None:
    from bench.fuzz.targets import TARGETS

    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__)
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument(
        "--seconds", type=int, default=60, help="how long to fuzz (libFuzzer -max_total_time)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "fuzz", help="crash files")
    parser.add_argument(
        "--rss-limit-mb",
        type=int,
        default=2048,
        help="libFuzzer -rss_limit_mb. libFuzzer reads the peak RSS from getrusage, which Linux carries "
        "over exec from the parent: a child of a big process (pytest) must allow for the parent's peak",
    )
    args = parser.parse_args()

    import atheris

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="duluan-fuzz-") as corpus:
        _seed_corpus(args.target, Path(corpus))
        argv = [
            sys.argv[0],
            corpus,
            f"-max_total_time={args.seconds}",
            f"-artifact_prefix={args.out}/{args.target}-",
            "-max_len=20000",
            f"-rss_limit_mb={args.rss_limit_mb}",
            "-timeout=20",
            "-print_final_stats=1",
        ]
        atheris.Setup(argv, TARGETS[args.target])
        atheris.Fuzz()


if __name__ == "__main__":
    main()
