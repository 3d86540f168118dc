"""One entry for every benchmark of the repository: `python -m bench [NAMES...] [--quick]` (or `make bench`).

Each benchmark runs as its own process (`python bench/<name>.py ARGS`), so one's memory or threads
never colour the next. Its output — which already holds the peer or baseline measured in the same
run (trafilatura alone for extraction, SQLite FTS5 and Elasticsearch for the embedded index, …) —
is echoed live and appended, with the exact command, the wall and CPU seconds it took and the
machine it ran on (CPU model, cores, RAM, load average, Python and package versions), as one dated
section of `bench/RESULTS.md`.

    .venv/bin/python -m bench --list
    .venv/bin/python -m bench --quick                        # every benchmark, small sizes (minutes)
    .venv/bin/python -m bench index_compare crawl_extraction # full sizes, only these
    .venv/bin/python -m bench index_tantivy --quick --results /tmp/R.md

Scripts added to `bench/` later are picked up by name: without an entry in `BENCHMARKS` they run
with their own defaults, and `--quick` skips them (it cannot know a small size for them).
Benchmarks are never timing assertions of `make test`.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "RESULTS.md"
#: Packages whose versions change the figures.
PACKAGES = (
    "tantivy",
    "elasticsearch",
    "trafilatura",
    "scrapy",
    "underthesea",
    "spacy",
    "torch",
    "onnxruntime",
    "fastapi",
    "uvicorn",
    "apscheduler",
    "sqlalchemy",
    "pydantic",
)


@dataclass(frozen=True)
class Benchmark:
    """How to run one script: full-size and quick arguments, and what it compares against."""

    name: str
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] | None = ()  # None: no quick form, skipped by --quick
    baseline: str = ""
    needs: str = ""  # a reason it cannot run without more input: skipped, with this note
    env: dict[str, str] = field(default_factory=dict)


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark(
            "crawl_extraction",
            baseline="trafilatura alone on the same gold pages",
        ),
        Benchmark(
            "crawl_throughput",
            full=("--copies", "154"),
            quick=("--copies", "4", "--no-enrich"),
            baseline="pages/s and memory; the per-stage split is the comparison",
        ),
        Benchmark(
            "nlp_enrich",
            full=("--docs", "600"),
            quick=("--docs", "40", "--workers", "1"),
            baseline="1 vs 2 worker processes",
        ),
        Benchmark("nlp_entities", baseline="the peer NER models of the script"),
        Benchmark(
            "nlp_eval",
            full=("--no-append",),  # the harness appends its own section
            quick=("--no-append",),
            baseline="the accuracy targets of issue 4 on every dev set",
        ),
        Benchmark(
            "nlp_transformer",
            quick=None,
            needs="trained models: run `python bench/nlp_transformer.py --models DIR` by hand",
        ),
        Benchmark(
            "index_compare",
            full=("--docs", "100000", "--backends", "tantivy,fts5,elasticsearch"),
            quick=(
                "--docs",
                "5000",
                "--repeat",
                "1",
                "--batch",
                "5000",
                "--backends",
                "tantivy,fts5,elasticsearch",
            ),
            baseline="SQLite FTS5 and Elasticsearch on the same corpus and queries",
        ),
        Benchmark(
            "index_fts5",
            full=("--docs", "100000"),
            quick=("--docs", "3000", "--batch", "3000", "--repeat", "1"),
            baseline="none alone (it is the peer of index_compare)",
        ),
        Benchmark(
            "index_tantivy",
            full=("--docs", "100000", "--batch", "20000"),
            quick=("--docs", "3000", "--batch", "3000", "--repeat", "1"),
            baseline="none (index_compare holds the peers)",
        ),
        Benchmark(
            "alerts_rules",
            full=("--docs", "1000000"),
            quick=("--docs", "20000", "--rules", "20", "--cycles", "1"),
            baseline="the 5-minute rule cycle budget",
        ),
        Benchmark(
            "alerts_latency",
            full=(),
            quick=("--documents", "2", "--rule-interval", "10", "--gap", "1", "2", "--wait", "90"),
            baseline="the latency goal of issue 6",
        ),
        Benchmark(
            "alerts_spike_quality",
            quick=("--days", "15", "--spikes", "6"),
            baseline="fixed-threshold detector (k values) on the same stream",
        ),
        Benchmark(
            "workers_scale",
            full=("--sources", "8", "--copies", "4", "--workers", "1", "2", "3"),
            quick=("--sources", "2", "--copies", "1", "--workers", "1", "2"),
            baseline="1 worker vs several on the same sources (PostgreSQL + Elasticsearch)",
        ),
        Benchmark(
            "web_load",
            full=("--docs", "1000000"),
            quick=("--docs", "5000", "--users", "5", "--duration", "5", "--home", "{tmp}/web_load_home"),
            baseline="p95 page latency goal",
        ),
    )
}


def discovered() -> list[str]:
    """Every benchmark script in `bench/` (known ones first, in their order, then new ones by name)."""
    scripts = sorted(p.stem for p in BENCH.glob("*.py") if not p.stem.startswith("_"))
    return [n for n in BENCHMARKS if n in scripts] + [n for n in scripts if n not in BENCHMARKS]


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return ""


def machine_info() -> list[str]:
    """CPU model, cores, RAM, load average, OS, Python and the versions of the packages that matter."""
    cpuinfo = _read("/proc/cpuinfo")
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
        platform.processor() or platform.machine(),
    )
    meminfo = _read("/proc/meminfo")
    total_kb = next((int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemTotal")), 0)
    available_kb = next(
        (int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemAvailable")), 0
    )
    load = os.getloadavg()
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return [
        f"CPU: {model}, {os.cpu_count()} cores (usable: {len(os.sched_getaffinity(0))})",
        f"RAM: {total_kb / 1024**2:.1f} GiB total, {available_kb / 1024**2:.1f} GiB available",
        f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        f"OS: {platform.platform()}; Python {platform.python_version()} ({sys.executable})",
        "packages: " + ", ".join(versions),
    ]


@dataclass
class Outcome:
    name: str
    command: str
    status: str  # "ok", "failed (exit N)", "skipped: why", "timed out"
    wall: float = 0.0
    cpu: float = 0.0
    load_after: float = 0.0
    output: str = ""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_one(name: str, quick: bool, tmp: Path, timeout: float, echo: bool) -> Outcome:
    bench = BENCHMARKS.get(name, Benchmark(name, quick=None))
    args = bench.quick if quick else bench.full
    display = f".venv/bin/python bench/{name}.py"
    if bench.needs:
        return Outcome(name, display, f"skipped: needs {bench.needs}")
    if args is None:
        return Outcome(name, display, "skipped: no quick form known (run it by name without --quick)")
    args = tuple(a.replace("{tmp}", str(tmp)) for a in args)
    command = [sys.executable, str(BENCH / f"{name}.py"), *args]
    display = " ".join([display, *map(shlex.quote, args)])
    if echo:
        print(f"\n=== {name}: {display}", flush=True)
    env = {
        **os.environ,
        **bench.env,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    lines: list[str] = []
    cpu0, t0 = _children_cpu(), time.perf_counter()
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    assert process.stdout is not None
    status = "ok"
    try:
        deadline = t0 + timeout
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if echo:
                print(line, end="", flush=True)
            if time.perf_counter() > deadline:
                raise subprocess.TimeoutExpired(command, timeout)
        code = process.wait(timeout=max(deadline - time.perf_counter(), 1))
        if code != 0:
            status = f"failed (exit {code})"
    except subprocess.TimeoutExpired:
        process.kill()  # our own child, by its handle
        process.wait()
        status = f"timed out after {timeout:.0f} s"
    return Outcome(
        name,
        display,
        status,
        wall=time.perf_counter() - t0,
        cpu=_children_cpu() - cpu0,
        load_after=os.getloadavg()[0],
        output="\n".join(lines),
    )


#: Lines of a benchmark's output kept in RESULTS.md (progress lines are dropped; the tail holds the figures).
MAX_OUTPUT_LINES = 80


def section(outcomes: list[Outcome], quick: bool, argv: list[str], machine: list[str]) -> str:
    stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    mode = "quick (small sizes: a smoke run, not reference figures)" if quick else "full sizes"
    out = [
        f"## Harness run {stamp}, {mode}",
        "",
        "    .venv/bin/python -m bench " + " ".join(map(shlex.quote, argv)),
        "",
        *[f"- {line}" for line in machine],
        "",
        "| benchmark | status | wall s | CPU s (all its processes) | load after | compared against |",
        "|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        baseline = BENCHMARKS[o.name].baseline if o.name in BENCHMARKS else ""
        out.append(
            f"| {o.name} | {o.status} | {o.wall:.1f} | {o.cpu:.1f} | {o.load_after:.2f} | {baseline} |"
        )
    for o in outcomes:
        if not o.output:
            continue
        kept = [line for line in o.output.splitlines() if line.strip()]
        if len(kept) > MAX_OUTPUT_LINES:
            kept = [f"… ({len(kept) - MAX_OUTPUT_LINES} earlier lines left out)", *kept[-MAX_OUTPUT_LINES:]]
        out += ["", f"### {o.name}", "", f"    {o.command}", "", "```", *kept, "```"]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all); see --list")
    parser.add_argument("--quick", action="store_true", help="small sizes: every benchmark in a few minutes")
    parser.add_argument(
        "--list", action="store_true", help="list the benchmarks and their arguments, run nothing"
    )
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="Markdown file the section is appended to"
    )
    parser.add_argument("--no-append", action="store_true", help="print only, do not touch the results file")
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds per benchmark (default: 600 quick, 4 h full)"
    )
    args = parser.parse_args(argv)
    known = discovered()
    unknown = [n for n in args.names if n not in known]
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)}; choose among: {', '.join(known)}")
    if args.list:
        for name in known:
            b = BENCHMARKS.get(name, Benchmark(name, quick=None))
            quick = "no quick form" if b.quick is None else " ".join(b.quick) or "(defaults)"
            full = " ".join(b.full) or "(defaults)"
            note = f"  needs {b.needs}" if b.needs else ""
            print(f"{name:22} full: {full:60} quick: {quick}{note}")
        return 0
    names = args.names or known
    timeout = args.timeout or (600.0 if args.quick else 4 * 3600.0)
    machine = machine_info()
    print("\n".join(machine), flush=True)
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"duluan-bench-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    outcomes = [run_one(name, args.quick, tmp, timeout, echo=True) for name in names]
    text = section(outcomes, args.quick, argv, machine)
    print("\n" + text)
    if not args.no_append:
        with args.results.open("a", encoding="utf-8") as handle:
            handle.write("\n" + text)
        print(f"appended to {args.results}")
    return 0 if all(o.status == "ok" or o.status.startswith("skipped") for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
