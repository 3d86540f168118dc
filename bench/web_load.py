"""Load test of the web API: N concurrent users searching and paging on a large embedded index.

Builds (once, reusable with --home) a home with a synthetic corpus from `bench.index_tantivy` and one
staff account with an API token, starts the real app (`duluan serve`, uvicorn) on a free loopback
port, then runs N virtual users for --duration seconds. Each user loops: a query from a fixed list,
page 1 with facets, then pages 2 and 3 (offset 20, 40). Latency is measured per request on the
client (httpx, asyncio) and reported as p50/p95/p99 with the error rate (non-200 or transport error).
`--think S` makes each user pause (exponential, mean S seconds) between requests like a person reading;
`--think 0` is a closed-loop stress test. The web app caches result pages per index commit, and the
fixed query list repeats, so `--no-repeat` gives every user session its own end date (`to=`): every
request is then a cache miss, the worst case. The report adds the server's CPU seconds (all its
processes, from /proc) per request next to the wall-clock latencies, since the machine may be shared.

    .venv/bin/python -m bench.web_load --docs 1000000 --users 50 --duration 60 --home /tmp/duluan-1m
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from itertools import islice
from pathlib import Path

import httpx

from bench.index_tantivy import QUERIES, documents
from duluan import accounts
from duluan.db import open_database
from duluan.settings import load_settings
from duluan.wiring import open_backend

REPO = Path(__file__).resolve().parents[1]


def build_home(home: Path, docs: int, batch: int) -> str:
    """Index `docs` synthetic documents under `home` (skipped when already there); return an API token."""
    settings = load_settings(home=home)
    engine = open_database(settings.db_url)
    if accounts.get_user(engine, "load") is None:
        accounts.create_user(engine, "load", "load-test-password", "staff")
    token = accounts.create_api_token(engine, "load", "web_load")
    engine.dispose()
    backend = open_backend(settings)
    try:
        have = backend.count()
        if have < docs:
            started = time.perf_counter()
            stream = islice(documents(docs), have, None)
            while chunk := list(islice(stream, batch)):
                backend.upsert(chunk)
                print(f"indexed {have + len(chunk)}/{docs}", file=sys.stderr, flush=True)
                have += len(chunk)
            print(f"indexing took {time.perf_counter() - started:.0f} s", file=sys.stderr)
        print(f"index holds {backend.count()} documents", file=sys.stderr)
    finally:
        backend.close()
    return token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(home: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    """`duluan serve` for one worker; several worker processes through uvicorn's factory mode."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DULUAN_")}
    env.update(DULUAN_HOME=str(home), DULUAN_WEB__PORT=str(port), DULUAN_LOG_LEVEL="WARNING")
    command = [sys.executable, "-m", "duluan", "serve"]
    if workers > 1:
        command = [
            sys.executable, "-m", "uvicorn", "duluan.web:app_from_env", "--factory",
            "--workers", str(workers), "--host", "127.0.0.1", "--port", str(port),
            "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(home / "web_load_server.log").open("wb"),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited; see {home / 'web_load_server.log'}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError("server did not become ready in 120 s")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and its children that have been waited for (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(pid: int) -> float:
    """CPU of the server process and its live worker processes (uvicorn --workers)."""
    total = process_cpu_seconds(pid)
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.is_file():
        for child in children.read_text().split():
            with contextlib.suppress(OSError, ValueError):
                total += process_cpu_seconds(int(child))
    return total


async def user_loop(
    client: httpx.AsyncClient,
    seed: int,
    stop_at: float,
    think_s: float,
    latencies: list[float],
    errors: list[str],
    no_repeat: bool = False,
) -> None:
    rng = random.Random(seed)
    while time.monotonic() < stop_at:
        query = rng.choice(QUERIES)
        session: dict[str, str] = {}
        if no_repeat:  # an end date of its own, after the corpus (same matches): never a cached page
            session["to"] = (date(2026, 12, 1) + timedelta(days=rng.randrange(60_000))).isoformat()
        for page, extra in enumerate(({"facets": "true"}, {}, {})):
            params = {"q": query, "limit": "20", "offset": str(page * 20), **session, **extra}
            started = time.perf_counter()
            try:
                response = await client.get("/api/v1/search", params=params)
                ok = response.status_code == 200
                if not ok:
                    errors.append(f"{response.status_code} {query!r}: {response.text[:120]}")
            except httpx.HTTPError as exc:
                errors.append(f"{type(exc).__name__} {query!r}")
            latencies.append(time.perf_counter() - started)
            if think_s > 0:  # a person reads the page before the next click (exponential, mean think_s)
                await asyncio.sleep(min(rng.expovariate(1 / think_s), 5 * think_s))
            if time.monotonic() >= stop_at:
                return


async def run_load(
    url: str,
    token: str,
    users: int,
    duration: float,
    think_s: float,
    no_repeat: bool = False,
    server_pid: int | None = None,
) -> dict[str, object]:
    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=users, max_keepalive_connections=users)
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30, limits=limits
    ) as client:
        # A long-running server has read the index's columns before: warm them (facets too).
        await client.get("/api/v1/search", params={"q": "warm up", "facets": "true", "histogram": "true"})
        started = time.monotonic()
        cpu_before = server_cpu_seconds(server_pid) if server_pid else 0.0
        client_cpu_before = time.process_time()
        stop_at = started + duration
        await asyncio.gather(
            *(user_loop(client, i, stop_at, think_s, latencies, errors, no_repeat) for i in range(users))
        )
        elapsed = time.monotonic() - started
        server_cpu = server_cpu_seconds(server_pid) - cpu_before if server_pid else float("nan")
        client_cpu = time.process_time() - client_cpu_before
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else float("nan")

    return {
        "users": users,
        "think_s": think_s,
        "duration_s": round(elapsed, 1),
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(pct(0.50), 1),
        "p95_ms": round(pct(0.95), 1),
        "p99_ms": round(pct(0.99), 1),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
        "server_cpu_s": round(server_cpu, 1),
        "server_cpu_ms_per_request": round(1000 * server_cpu / max(len(latencies), 1), 2),
        "client_cpu_s": round(client_cpu, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "no_repeat": no_repeat,
        "errors": len(errors),
        "error_rate": round(len(errors) / max(len(latencies), 1), 4),
        "first_errors": errors[:5],
    }


WRK_SCRIPT = """
local queries = {QUERIES}
local token = "{TOKEN}"
local no_repeat = {NO_REPEAT}
local step, query, extra = 0, "", ""

setup = function(thread) thread:set("seed", math.random(1, 1000000)) end
init = function(args) math.randomseed(seed) end

-- Like the httpx users: a query from the list, page 1 with facets, then pages 2 and 3.
request = function()
  local page = step % 3
  if page == 0 then
    query = queries[math.random(#queries)]
    extra = ""
    if no_repeat then
      extra = string.format("&to=%04d-%02d-%02d", math.random(2027, 2199), math.random(12), math.random(28))
    end
  end
  step = step + 1
  local path = "/api/v1/search?limit=20&q=" .. query .. "&offset=" .. (page * 20) .. extra
  if page == 0 then path = path .. "&facets=true" end
  return wrk.format("GET", path, {["Authorization"] = "Bearer " .. token})
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %d, "duration_us": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, "mean_us": %.0f, '
    .. '"errors_connect": %d, "errors_read": %d, "errors_write": %d, "errors_status": %d, '
    .. '"errors_timeout": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def run_wrk(
    url: str, token: str, users: int, duration: float, no_repeat: bool, server_pid: int, home: Path
) -> dict[str, object]:
    """The same user behaviour driven by wrk (C, event loop): the load tool costs far less CPU than
    the Python client, so on a 2-core machine more of it is left to the server."""
    from urllib.parse import quote

    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `apt-get install wrk` (or use --tool httpx)")
    lua = home / "web_load.lua"
    encoded = ", ".join(json.dumps(quote(q, safe="")) for q in QUERIES)
    lua.write_text(
        WRK_SCRIPT.replace("{QUERIES}", "{" + encoded + "}")
        .replace("{TOKEN}", token)
        .replace("{NO_REPEAT}", "true" if no_repeat else "false")
    )
    httpx.get(f"{url}/api/v1/search", params={"q": "warm up", "facets": "true", "histogram": "true"},
              headers={"Authorization": f"Bearer {token}"}, timeout=60)  # fmt: skip
    cpu_before = server_cpu_seconds(server_pid)
    wrk_started = time.perf_counter()
    done = subprocess.run(
        ["wrk", "-t", "2", "-c", str(users), "-d", f"{duration:.0f}s", "--timeout", "30s",
         "-s", str(lua), url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    elapsed = time.perf_counter() - wrk_started
    server_cpu = server_cpu_seconds(server_pid) - cpu_before
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRK ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")
    raw = json.loads(line[4:])
    requests = int(raw["requests"])
    errors = sum(int(v) for k, v in raw.items() if k.startswith("errors_"))
    return {
        "tool": "wrk",
        "users": users,
        "think_s": 0.0,
        "duration_s": round(raw["duration_us"] / 1e6, 1),
        "requests": requests,
        "requests_per_s": round(requests / (raw["duration_us"] / 1e6), 1),
        "p50_ms": round(raw["p50_us"] / 1000, 1),
        "p95_ms": round(raw["p95_us"] / 1000, 1),
        "p99_ms": round(raw["p99_us"] / 1000, 1),
        "mean_ms": round(raw["mean_us"] / 1000, 1),
        "server_cpu_s": round(server_cpu, 1),
        "server_cpu_ms_per_request": round(1000 * server_cpu / max(requests, 1), 2),
        "wall_s": round(elapsed, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "no_repeat": no_repeat,
        "errors": errors,
        "error_rate": round(errors / max(requests, 1), 4),
        "error_kinds": {k: v for k, v in raw.items() if k.startswith("errors_") and v},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument(
        "--think", type=float, default=0.0, help="mean pause between a user's requests, s (0: closed loop)"
    )
    parser.add_argument("--workers", type=int, default=1, help="web server processes")
    parser.add_argument(
        "--tool",
        choices=("httpx", "wrk"),
        default="httpx",
        help="load client: httpx (Python, asyncio; supports --think) or wrk (C; closed loop only)",
    )
    parser.add_argument(
        "--no-repeat", action="store_true", help="a date filter per user session: every page is a cache miss"
    )
    parser.add_argument("--home", type=Path, default=Path("bench/out/web_load_home"))
    parser.add_argument("--build-only", action="store_true", help="build the home and exit")
    args = parser.parse_args()
    args.home.mkdir(parents=True, exist_ok=True)
    token = build_home(args.home.resolve(), args.docs, args.batch)
    if args.build_only:
        return
    port = free_port()
    server = start_server(args.home.resolve(), port, args.workers)
    try:
        if args.tool == "wrk":
            if args.think:
                raise SystemExit("wrk runs closed-loop users only; use --tool httpx with --think")
            report = run_wrk(
                f"http://127.0.0.1:{port}",
                token,
                args.users,
                args.duration,
                args.no_repeat,
                server.pid,
                args.home.resolve(),
            )
        else:
            report = asyncio.run(
                run_load(
                    f"http://127.0.0.1:{port}",
                    token,
                    args.users,
                    args.duration,
                    args.think,
                    args.no_repeat,
                    server.pid,
                )
            )
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
    print(json.dumps({"docs": args.docs, "workers": args.workers, **report}, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
