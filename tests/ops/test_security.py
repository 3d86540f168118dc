"""SSRF guard on sources people enter, security headers, path traversal, /metrics access."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from crawlers.registry import CHECK_TARGETS, SourceSpec, get_source, upsert_sources
from crawlers.ssrf import PrivateTargetError, address_problem, check_url
from duluan import accounts
from duluan.db import open_database
from duluan.settings import Settings
from duluan.web import create_app
from tests.ops.conftest import build_home

PASSWORD = "mat-khau-thu-nghiem"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9200/_cat/indices",
        "http://localhost/admin",
        "http://[::1]/",
        "http://2130706433/",  # 127.0.0.1 as one number
        "http://0x7f.1/",
        "http://0177.0.0.1/",
        "http://10.1.2.3/",
        "http://192.168.1.1/",
        "http://172.16.5.4/",
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://100.100.100.200/",
        "http://100.64.1.1/",
        "http://0.0.0.0/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://printer.local/",
        "http://intranet.ioc.internal/",
        "http://app.localhost:8000/",
    ],
)
def test_private_targets_are_refused(url: str) -> None:
    with pytest.raises(PrivateTargetError, match="allow-private"):
        check_url(url)


def test_public_targets_and_resolution() -> None:
    check_url("https://vnexpress.net/rss/tin-moi-nhat.rss", resolver=lambda host: ["111.65.248.132"])
    check_url("http://8.8.8.8/")
    # A public-looking name that resolves into the LAN (or rebinds to loopback) is refused…
    with pytest.raises(PrivateTargetError, match=r"resolves to 192\.168\.0\.7"):
        check_url("https://news.example.vn/rss", resolver=lambda host: ["14.225.10.20", "192.168.0.7"])
    # …and the real resolver is used by default: localhost's addresses are loopback.
    assert address_problem(ipaddress.ip_address("127.0.0.1")) == "loopback (this machine)"
    # A name that does not resolve (offline machine) is accepted: the crawl reports it unreachable.
    check_url("https://khong-ton-tai.invalid/rss", resolver=lambda host: [])


def test_registry_checks_only_entered_sources_and_honours_allow_private(tmp_path: Path) -> None:
    raw = {"id": "noi-bo", "name": "Cổng nội bộ", "type": "rss", "start_urls": ["http://127.0.0.1:8080/rss"]}
    with pytest.raises(ValidationError, match="loopback"):
        SourceSpec.model_validate(raw, context=CHECK_TARGETS)
    allowed = SourceSpec.model_validate({**raw, "allow_private": True}, context=CHECK_TARGETS)
    # Stored sources (and the demo's, and tests') load without DNS and without the guard.
    assert SourceSpec.model_validate(raw).allow_private is False
    engine = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        upsert_sources(engine, [allowed])
        stored = get_source(engine, "noi-bo")
        assert stored is not None and stored.allow_private is True
        assert stored.politeness.model_dump() == allowed.politeness.model_dump()
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict[str, str]]:
    settings = build_home(tmp_path_factory.mktemp("sec") / "home", documents=30)
    engine = open_database(settings.db_url)
    tokens = {}
    for name, role in (("admin1", "admin"), ("leader1", "leader")):
        accounts.create_user(engine, name, PASSWORD, role)
        tokens[name] = accounts.create_api_token(engine, name, "test")
    engine.dispose()
    (settings.home / "secret.txt").write_text("SECRET-MARKER-42")
    return settings, tokens


@pytest.fixture(scope="module")
def app_client(web: tuple[Settings, dict[str, str]]) -> TestClient:
    return TestClient(create_app(web[0]))


def test_entered_private_source_is_refused_in_ui_and_api(
    web: tuple[Settings, dict[str, str]], app_client: TestClient
) -> None:
    settings, tokens = web
    admin = {"Authorization": f"Bearer {tokens['admin1']}"}
    form = {
        "id": "lan",
        "name": "LAN",
        "type": "rss",
        "source_type": "news",
        "start_urls": "http://169.254.169.254/latest/meta-data/",
        "schedule": "every 30m",
        "enabled": "on",
    }
    page = app_client.post("/sources/edit", data=form, headers=admin)
    assert page.status_code == 200 and "cloud metadata service" in page.text
    api = app_client.put(
        "/api/v1/sources/lan",
        json={"name": "LAN", "type": "rss", "start_urls": ["http://10.0.0.5/rss"]},
        headers=admin,
    )
    assert api.status_code == 422 and "private network" in api.json()["detail"]
    engine = open_database(settings.db_url)
    try:
        assert get_source(engine, "lan") is None
    finally:
        engine.dispose()
    ok = app_client.post(
        "/sources/edit", data={**form, "start_urls": "https://baodongnai.com.vn/rss"}, headers=admin
    )
    assert ok.status_code == 200 or ok.status_code == 303


HEADERS = {
    "content-security-policy": "default-src",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "permissions-policy": "camera=()",
    "cross-origin-resource-policy": "same-origin",
}


@pytest.mark.parametrize(
    "path", ["/login", "/healthz", "/readyz", "/static/app.css", "/nope", "/api/v1/search", "/metrics", "/"]
)
def test_security_headers_on_every_response(app_client: TestClient, path: str) -> None:
    response = app_client.get(path, follow_redirects=False)
    for name, fragment in HEADERS.items():
        assert fragment in response.headers.get(name, ""), (path, name, response.status_code)
    assert response.headers.get("x-frame-options") in ("DENY", "SAMEORIGIN")
    csp = response.headers["content-security-policy"]
    assert "'unsafe-inline'" not in csp.split("script-src")[-1].split(";")[0]


@pytest.mark.parametrize(
    "path",
    [
        "/digests/..%2F..%2Fsecret.txt/raw",
        "/digests/..%2F..%2Fsecret.txt/pdf",
        "/digests/2026-11-01%2F..%2F..%2Fsecret.txt/raw",
        "/digests/../../secret.txt/raw",
        "/api/v1/exports/..%2F..%2Fsecret.txt/download",
        "/api/v1/exports/%2E%2E%2F%2E%2E%2Fsecret.txt/download",
        "/api/v1/exports/0123456789abcdef0123456789abcdef%2F..%2F..%2F..%2Fsecret.txt/download",
        "/static/..%2F..%2F..%2Fsecret.txt",
        "/static/../../../secret.txt",
        "/static/%2e%2e/%2e%2e/web.py",
    ],
)
def test_no_path_traversal_in_downloads(
    web: tuple[Settings, dict[str, str]], app_client: TestClient, path: str
) -> None:
    admin = {"Authorization": f"Bearer {web[1]['admin1']}"}
    response = app_client.get(path, headers=admin, follow_redirects=False)
    assert 400 <= response.status_code < 500, (path, response.status_code)
    assert b"SECRET-MARKER" not in response.content and b"def create_app" not in response.content


def test_metrics_need_a_token_off_loopback(
    web: tuple[Settings, dict[str, str]], app_client: TestClient
) -> None:
    # The in-process test client is not a loopback peer: without a token, no metrics.
    denied = app_client.get("/metrics")
    assert denied.status_code == 401 and denied.headers["www-authenticate"] == "Bearer"
    assert app_client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = app_client.get("/metrics", headers={"Authorization": f"Bearer {web[1]['leader1']}"})
    assert ok.status_code == 200 and ok.headers["content-type"].startswith("text/plain")
    assert "duluan_index_documents 30.0" in ok.text


def test_allow_private_command(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from duluan.cli import app

    settings = build_home(tmp_path / "home", documents=1)
    runner = CliRunner()
    home = ["--home", str(settings.home)]
    allowed = runner.invoke(app, [*home, "allow-private", "baodongnai"])
    assert allowed.exit_code == 0 and "allowed" in allowed.output
    engine = open_database(settings.db_url)
    try:
        spec = get_source(engine, "baodongnai")
        assert spec is not None and spec.allow_private
        # Now an admin may point it at the intranet through the validated (UI/API) path.
        SourceSpec.model_validate(
            {**spec.model_dump(mode="json"), "start_urls": ["http://10.0.0.8/rss"]}, context=CHECK_TARGETS
        )
        revoked = runner.invoke(app, [*home, "allow-private", "baodongnai", "--revoke"])
        assert revoked.exit_code == 0 and "forbidden" in revoked.output
        spec = get_source(engine, "baodongnai")
        assert spec is not None and not spec.allow_private
    finally:
        engine.dispose()
    unknown = runner.invoke(app, [*home, "allow-private", "nope"])
    assert unknown.exit_code == 2
