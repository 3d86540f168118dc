"""The REST API and the server side of the UI, in process: roles, CSRF, throttling, labels, rules with
dry run, digests, sources, exports and security headers."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from alerts.store import RuleSpec
from duluan import accounts
from duluan.db import open_database
from duluan.settings import Settings
from duluan.web import create_app, csv_safe
from duluan.web_helpers import dry_run_rule, safe_http_url, svg_bar_chart
from duluan.wiring import open_backend
from tests.web.conftest import PASSWORD, build_home


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return build_home(tmp_path_factory.mktemp("api") / "home")


_APPS: dict[str, FastAPI] = {}


def shared_app(settings: Settings) -> FastAPI:
    """One app per test home (building one migrates the database, which takes a while)."""
    key = str(settings.home)
    if key not in _APPS:
        _APPS[key] = create_app(settings)
    return _APPS[key]


def api(settings: Settings, username: str) -> TestClient:
    engine = open_database(settings.db_url)
    token = accounts.create_api_token(engine, username, "test")
    engine.dispose()
    return TestClient(shared_app(settings), headers={"Authorization": f"Bearer {token}"})


def browser(settings: Settings) -> TestClient:
    """A fresh cookie jar on the shared app."""
    return TestClient(shared_app(settings))


def login(client: TestClient, username: str, password: str = PASSWORD, next: str = "/") -> object:
    page = client.get("/login").text
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf, "next": next},
        follow_redirects=False,
    )


def session_csrf(client: TestClient) -> str:
    return client.get("/").text.split('name="csrf_token" value="')[1].split('"')[0]


def test_every_route_but_probes_login_and_static_needs_a_user(settings: Settings) -> None:
    client = browser(settings)
    assert client.get("/healthz").status_code == 200
    assert client.get("/static/app.css").status_code == 200
    assert client.get("/login").status_code == 200
    # The language switch only sets a cookie; /metrics has its own rule (loopback or token, tests/ops).
    public = {"/healthz", "/readyz", "/login", "/lang/{code}", "/metrics"}
    for route in client.app.routes:  # type: ignore[attr-defined]
        path = getattr(route, "path", "")
        methods = getattr(route, "methods", None) or set()
        if path in public or path.startswith("/static") or "GET" not in methods:
            continue
        url = path.replace("{doc_id}", "doc1").replace("{name}", "x").replace("{source_id}", "x")
        url = url.replace("{day}", "2026-11-27").replace("{job_id}", "0" * 32)
        url = url.replace("{cluster_id}", "c-flood").replace("{username}", "admin1")
        response = client.get(url, follow_redirects=False)
        assert response.status_code in (303, 401), f"{url} answered {response.status_code} without login"


def test_login_sets_safe_cookie_and_refuses_open_redirects(settings: Settings) -> None:
    client = browser(settings)
    done = login(client, "staff1", next="//evil.example/steal")
    assert done.status_code == 303 and done.headers["location"] == "/"  # type: ignore[attr-defined]
    cookie = done.headers["set-cookie"].lower()  # type: ignore[attr-defined]
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    page = client.get("/")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"


def test_secure_cookie_behind_tls(settings: Settings) -> None:
    tls = settings.model_copy(
        update={"alerts": settings.alerts.model_copy(update={"ui_base_url": "https://ioc.vn"})}
    )
    client = TestClient(create_app(tls), base_url="https://testserver")
    done = login(client, "staff1")
    assert "secure" in done.headers["set-cookie"].lower()  # type: ignore[attr-defined]


def test_login_is_rate_limited(settings: Settings) -> None:
    client = TestClient(create_app(settings))  # its own throttle
    codes = [login(client, "leader1", "sai-mat-khau-roi").status_code for _ in range(6)]  # type: ignore[attr-defined]
    assert codes[:5] == [401] * 5 and codes[5] == 429
    blocked = login(client, "leader1")  # even the right password waits
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0  # type: ignore[attr-defined]
    assert login(client, "analyst1").status_code == 303  # type: ignore[attr-defined]


def test_forms_need_the_session_csrf_token(settings: Settings) -> None:
    client = browser(settings)
    login(client, "analyst1")
    no_token = client.post("/documents/doc6/label", data={"field": "topic", "value": "kinh-te"})
    assert no_token.status_code == 403 and "CSRF" in no_token.text
    json_no_header = client.post(
        "/api/v1/documents/doc6/labels", json={"field": "relevance", "value": "relevant"}
    )
    assert json_no_header.status_code == 403
    ok = client.post(
        "/api/v1/documents/doc6/labels",
        json={"field": "relevance", "value": "relevant"},
        headers={"X-CSRF-Token": session_csrf(client)},
    )
    assert ok.status_code == 201


def test_roles_are_checked_on_every_endpoint(settings: Settings) -> None:
    staff, leader = api(settings, "staff1"), api(settings, "leader1")
    assert staff.get("/api/v1/users").status_code == 403
    forbidden = staff.put(
        "/api/v1/sources/x", json={"name": "X", "type": "rss", "start_urls": ["https://x.vn/rss"]}
    )
    assert forbidden.status_code == 403 and forbidden.json()["capability"] == "sources_edit"
    assert leader.get("/api/v1/rules").status_code == 403
    assert (
        leader.post("/api/v1/documents/doc1/labels", json={"field": "topic", "value": "y-te"}).status_code
        == 403
    )
    assert leader.get("/api/v1/digests").status_code == 200
    assert leader.get("/api/v1/search", params={"q": "ngập"}).json()["total"] == 3
    schema = staff.get("/openapi.json").json()
    assert "/api/v1/search" in schema["paths"] and "/login" not in schema["paths"]
    me = staff.get("/api/v1/me").json()
    assert me["role"] == "staff" and "rules" in me["capabilities"] and "users" not in me["capabilities"]


def test_search_api_facets_stories_and_problem_details(settings: Settings) -> None:
    client = api(settings, "staff1")
    body = client.get(
        "/api/v1/search", params={"q": "ngập OR cháy", "facets": True, "histogram": True}
    ).json()
    assert body["total"] == 4
    facets = {f: {b["value"]: b["count"] for b in buckets} for f, buckets in body["facets"].items()}
    assert facets["source"] == {"baodongnai": 2, "vnexpress": 1, "tuoitre": 1}
    assert sum(n for _, n in body["histogram"]) == 4
    stories = client.get("/api/v1/stories", params={"q": "ngập"}).json()
    assert [(h["story_outlets"], h["story_documents"]) for h in stories["hits"]] == [(3, 3)]
    paged = client.get("/api/v1/search", params={"q": "ngập", "limit": 2, "offset": 2, "sort": "date"}).json()
    assert paged["total"] == 3 and len(paged["hits"]) == 1
    bad = client.get("/api/v1/search", params={"q": "(ngập"})
    assert bad.status_code == 400 and bad.json()["position"] is not None and bad.json()["detail_vi"]
    bad_day = client.get("/api/v1/search", params={"from": "2026-02-31"})
    assert bad_day.status_code == 400 and "YYYY-MM-DD" in bad_day.json()["detail"]
    missing = client.get("/api/v1/documents/nope")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"


def test_label_correction_is_stored_shown_and_audited(settings: Settings) -> None:
    client = api(settings, "analyst1")
    done = client.post("/api/v1/documents/doc5/labels", json={"field": "sentiment", "value": "neutral"})
    assert done.status_code == 201 and done.json()["previous"] == "positive" and done.json()["index_updated"]
    assert client.get("/api/v1/documents/doc5").json()["sentiment"] == "neutral"
    assert client.get("/api/v1/labels").json()[0]["doc_id"] == "doc5"
    unknown = client.post("/api/v1/documents/doc5/labels", json={"field": "topic", "value": "bogus"})
    assert unknown.status_code == 422 and "unknown topic" in unknown.json()["detail"]
    audit = api(settings, "admin1").get("/api/v1/audit", params={"object_type": "document"}).json()
    assert any(a["object_id"] == "doc5" and a["username"] == "analyst1" for a in audit)


def test_rules_crud_ownership_and_dry_run(settings: Settings) -> None:
    staff, analyst = api(settings, "staff1"), api(settings, "analyst1")
    rule = {"name": "Ngập (staff)", "rule_type": "match", "query": "ngập", "owner": "someone-else"}
    created = staff.post("/api/v1/rules", json=rule)
    assert created.status_code == 201 and created.json()["owner"] == "staff1"  # staff own what they write
    invalid = staff.post("/api/v1/rules", json={**rule, "name": "Hỏng", "query": '"ngập'})
    assert invalid.status_code == 422 and "invalid query" in invalid.json()["detail"]
    analyst.post("/api/v1/rules", json={"name": "Của analyst", "rule_type": "match", "query": "cháy"})
    assert [r["name"] for r in staff.get("/api/v1/rules").json()] == ["Ngập (staff)"]
    assert staff.delete("/api/v1/rules/Của analyst").status_code == 404
    taken = staff.post("/api/v1/rules", json={**rule, "name": "Của analyst"})
    assert taken.status_code == 409 and "choose another name" in taken.json()["detail"]
    assert {r["name"] for r in analyst.get("/api/v1/rules").json()} >= {"Ngập (staff)", "Của analyst"}
    updated = staff.put("/api/v1/rules/Ngập (staff)", json={**rule, "suppression_minutes": 5})
    assert updated.json()["suppression_minutes"] == 5
    dry = staff.post("/api/v1/rules/dry-run", json=rule).json()  # copies fetched an hour apart
    assert [a["key"] for a in dry["alerts"]] == ["cluster:c-flood"] * 3
    quiet = staff.post("/api/v1/rules/dry-run", json={**rule, "suppression_minutes": 240}).json()
    assert len(quiet["alerts"]) == 1 and quiet["suppressed"] == 2
    assert staff.get("/api/v1/alerts").json() == []  # a dry run writes nothing
    assert staff.delete("/api/v1/rules/Ngập (staff)").status_code == 204
    audit = api(settings, "admin1").get("/api/v1/audit", params={"object_type": "alert_rule"}).json()
    assert [a["action"] for a in audit if a["object_id"] == "Ngập (staff)"] == ["delete", "update", "create"]


def test_dry_run_replays_the_engine_policy(settings: Settings) -> None:
    backend = open_backend(settings)
    try:
        spec = RuleSpec(
            name="t",
            owner="x",
            rule_type="threshold",
            query="ngập",
            params={"min_count": 3, "window_minutes": 180},
            suppression_minutes=24 * 60,
        )
        result = dry_run_rule(backend, spec, datetime.now(UTC))
    finally:
        backend.close()
    assert result.evaluations == 7 * 24
    assert len(result.alerts) == 1 and result.alerts[0].counts["count"] == 3


def test_digests_list_render_and_sandboxed_view(settings: Settings) -> None:
    leader, analyst = api(settings, "leader1"), api(settings, "analyst1")
    listing = leader.get("/api/v1/digests").json()
    assert len(listing) == 1
    raw = leader.get(listing[0]["url"])
    assert raw.status_code == 200 and "script-src" not in raw.headers["content-security-policy"]
    assert raw.headers["content-security-policy"].startswith("default-src 'none'")
    assert leader.post("/api/v1/digests", json={}).status_code == 403
    rendered = analyst.post("/api/v1/digests", json={"day": "2026-11-01"})
    assert rendered.status_code == 201 and len(leader.get("/api/v1/digests").json()) == 2
    assert leader.get("/digests/../../etc/passwd/raw").status_code in (404, 422)


def test_sources_validate_urls_and_admin_edits_are_audited(settings: Settings) -> None:
    admin = api(settings, "admin1")
    bad = admin.put(
        "/api/v1/sources/moi", json={"name": "Mới", "type": "rss", "start_urls": ["javascript:alert(1)"]}
    )
    assert bad.status_code == 422 and "absolute http(s) URL" in bad.json()["detail"]
    ok = admin.put(
        "/api/v1/sources/moi", json={"name": "Mới", "type": "rss", "start_urls": ["https://moi.vn/rss"]}
    )
    assert ok.status_code == 200
    sources = {s["id"]: s for s in admin.get("/api/v1/sources").json()}
    assert sources["moi"]["health"]["status"] == "never_run"
    assert admin.post("/api/v1/sources/moi/enabled", params={"enabled": False}).json() == {
        "id": "moi",
        "enabled": False,
    }
    assert [a["action"] for a in admin.get("/api/v1/audit", params={"object_type": "source"}).json()] == [
        "disable",
        "create",
    ]


def test_export_never_starts_a_cell_with_a_formula(settings: Settings) -> None:
    assert [csv_safe(v) for v in ("=1+1", "+x", "-2", "@SUM", "ok", None)] == [
        "'=1+1",
        "'+x",
        "'-2",
        "'@SUM",
        "ok",
        "",
    ]
    backend = open_backend(settings)
    doc = backend.get("doc6")
    assert doc is not None
    backend.upsert([doc.model_copy(update={"title": '=HYPERLINK("http://evil")'})])
    backend.close()
    response = api(settings, "staff1").get("/api/v1/export.csv", params={"q": "lúa"})
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][0] == "id" and rows[1][3] == '\'=HYPERLINK("http://evil")'


def test_helpers_escape_and_refuse_unsafe_links() -> None:
    svg = svg_bar_chart([("<b>", 3), ("x", 1)], title="<script>")
    assert "<script>" not in svg and "&lt;b&gt;" in svg and svg.count('class="bar"') == 2
    assert (
        safe_http_url("javascript:alert(1)") is None and safe_http_url("https://a.vn/x") == "https://a.vn/x"
    )


def test_ui_pages_render_for_each_role(settings: Settings) -> None:
    pages = {
        "/": 200,
        "/overview": 200,
        "/alerts": 200,
        "/digests": 200,
        "/sources": 200,
        "/admin/users": 200,
        "/sources/edit": 200,
        "/alerts/rules/edit": 200,
        "/documents/doc4": 200,
        "/models": 200,
        "/labels/queue": 200,
    }
    expected = {
        "admin1": pages,
        "analyst1": {**pages, "/admin/users": 403, "/sources/edit": 403},
        "staff1": {**pages, "/admin/users": 403, "/sources/edit": 403, "/models": 403},
        "leader1": {
            **pages,
            "/admin/users": 403,
            "/sources/edit": 403,
            "/alerts": 403,
            "/alerts/rules/edit": 403,
            "/models": 403,
            "/labels/queue": 403,
        },
    }
    for username, codes in expected.items():
        client = browser(settings)
        login(client, username)
        got = {path: client.get(path).status_code for path in codes}
        assert got == codes, username


def test_alert_history_and_the_page_alert_messages_link_to(settings: Settings) -> None:
    from alerts.engine import run_rules_once
    from alerts.messages import alert_link

    analyst = api(settings, "analyst1")
    rule = {
        "name": "Cháy chợ",
        "rule_type": "match",
        "query": "cháy",
        "params": {"first_run_lookback_minutes": 3000},
    }
    assert analyst.post("/api/v1/rules", json=rule).status_code == 201
    engine, backend = open_database(settings.db_url), open_backend(settings)
    try:
        fired = run_rules_once(backend, engine, datetime.now(UTC))
    finally:
        backend.close()
        engine.dispose()
    [alert] = [a for a in fired if a.rule_name == "Cháy chợ"]
    history = analyst.get("/api/v1/alerts", params={"rule": "Cháy chợ"}).json()
    assert [h["id"] for h in history] == [alert.id]
    assert api(settings, "staff1").get(f"/api/v1/alerts/{alert.id}").status_code == 404  # not their rule
    client = browser(settings)
    login(client, "analyst1")
    path = alert_link("http://testserver", alert.id).removeprefix("http://testserver")
    page = client.get(path)
    assert page.status_code == 200 and "&lt;script&gt;window.__pwned" in page.text
    assert "<script>window" not in page.text


def test_labelling_queue_lists_least_certain_unlabelled_documents(settings: Settings) -> None:
    analyst = api(settings, "analyst1")
    queue = analyst.get("/api/v1/labels/queue", params={"task": "sentiment"}).json()
    assert [(q["id"], q["confidence"]) for q in queue] == [("doc4", 0.4), ("doc1", 0.55), ("doc2", 0.9)]
    client = browser(settings)
    login(client, "analyst1")
    page = client.get("/labels/queue")
    assert page.status_code == 200 and "&lt;script&gt;window.__pwned" in page.text
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    done = client.post(
        "/documents/doc4/label",
        data={
            "field": "sentiment",
            "value": "negative",
            "back": "/labels/queue?task=sentiment",
            "csrf_token": csrf,
        },
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/labels/queue?task=sentiment"
    after = analyst.get("/api/v1/labels/queue", params={"task": "sentiment"}).json()
    assert [q["id"] for q in after] == ["doc1", "doc2"]
    assert api(settings, "leader1").get("/api/v1/labels/queue").status_code == 403


def test_models_show_the_evaluation_of_the_models_in_use(settings: Settings) -> None:
    models = {m["task"]: m for m in api(settings, "analyst1").get("/api/v1/models").json()}
    assert set(models) == {"topic", "sentiment", "toxicity"}
    sentiment = models["sentiment"]
    assert sentiment["path"].endswith("model.joblib") and sentiment["evaluations"]
    for ev in sentiment["evaluations"]:
        labels, confusion = ev["labels"], ev["confusion"]
        assert len(confusion) == len(labels) and all(len(row) == len(labels) for row in confusion)
        assert sum(map(sum, confusion)) == ev["n"] and 0 < ev["macro_f1"] <= 1
    assert api(settings, "staff1").get("/api/v1/models").status_code == 403


# -- exports as background jobs, digests PDF and subscription, the rest of the REST surface ----------


def _finished(client: TestClient, job: dict[str, object], timeout: float = 30.0) -> dict[str, object]:
    import time

    deadline = time.monotonic() + timeout
    while True:
        state = client.get(str(job["status_url"])).json()
        if state["state"] not in ("queued", "running") or time.monotonic() > deadline:
            return dict(state)
        time.sleep(0.05)


def test_export_jobs_run_in_background_and_only_the_owner_downloads(settings: Settings) -> None:
    from openpyxl import load_workbook

    staff, analyst, admin = api(settings, "staff1"), api(settings, "analyst1"), api(settings, "admin1")
    bad = staff.post("/api/v1/exports", json={"q": '"unclosed', "format": "csv"})
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("application/problem+json")
    started = staff.post("/api/v1/exports", json={"q": "Đồng Xoài", "format": "csv"})
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["state"] in ("queued", "running", "done") and job["total"] == 4
    done = _finished(staff, job)
    assert done["state"] == "done" and done["rows"] == 4 and done["percent"] == 100
    download = staff.get(str(done["download_url"]))
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert "attachment" in download.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["id", "url", "title"] and sorted(r[0] for r in rows[1:]) == [
        "doc1",
        "doc2",
        "doc3",
        "doc4",
    ]
    # Someone else's job does not exist for you; an admin may fetch it.
    assert analyst.get(str(job["status_url"])).status_code == 404
    assert analyst.get(str(done["download_url"])).status_code == 404
    assert admin.get(str(done["download_url"])).status_code == 200
    assert [j["id"] for j in staff.get("/api/v1/exports").json()] == [job["id"]]
    assert analyst.get("/api/v1/exports").json() == []
    # Ids are 32 hex digits: anything else never becomes a path.
    for evil in ("..%2F..%2Fduluan.db", "%2e%2e", "0" * 31 + "/", "A" * 32):
        assert staff.get(f"/api/v1/exports/{evil}/download").status_code == 404
    # XLSX, with a formula-looking title neutralised.
    backend = open_backend(settings)
    doc = backend.get("doc5")
    assert doc is not None
    backend.upsert([doc.model_copy(update={"title": "=cmd|' /C calc'!A0"})])
    backend.close()
    xlsx = _finished(staff, staff.post("/api/v1/exports", json={"q": "trường học", "format": "xlsx"}).json())
    assert xlsx["state"] == "done"
    content = staff.get(str(xlsx["download_url"])).content
    sheet = load_workbook(io.BytesIO(content), read_only=True).active
    assert sheet is not None
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert values[1][2] == "'=cmd|' /C calc'!A0"
    # Delete a finished job; the audit log names who exported what.
    assert staff.delete(f"/api/v1/exports/{xlsx['id']}").status_code == 204
    assert staff.get(f"/api/v1/exports/{xlsx['id']}").status_code == 404
    audit = admin.get("/api/v1/audit", params={"object_type": "search"}).json()
    assert any(a["action"] == "export" and a["object_id"] == job["id"] for a in audit)


def test_export_form_redirects_to_a_progress_page(settings: Settings) -> None:
    client = browser(settings)
    login(client, "staff1")
    csrf = session_csrf(client)
    response = client.post(
        "/exports", data={"csrf_token": csrf, "q": "lúa", "format": "csv"}, follow_redirects=False
    )
    assert response.status_code == 303 and response.headers["location"].startswith("/exports/")
    page = client.get(response.headers["location"])
    assert page.status_code == 200 and "<progress" in page.text
    job_id = response.headers["location"].rsplit("/", 1)[1]
    _finished(client, {"status_url": f"/api/v1/exports/{job_id}"})
    deleted = client.post(f"/exports/{job_id}/delete", data={"csrf_token": csrf}, follow_redirects=False)
    assert deleted.status_code == 303 and job_id not in client.get("/exports").text
    assert client.post("/exports", data={"q": "lúa"}, follow_redirects=False).status_code == 403


def test_digest_pdf_and_subscription(settings: Settings) -> None:
    from duluan.digest_subscriptions import SUBSCRIBERS_GROUP, subscriber_groups

    leader = api(settings, "leader1")
    listing = leader.get("/api/v1/digests").json()
    day = listing[-1]["day"]
    one = leader.get(f"/api/v1/digests/{day}").json()
    assert one["pdf_url"] == f"/digests/{day}/pdf"
    pdf = leader.get(one["pdf_url"])
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert leader.get("/api/v1/digests/2001-01-01").status_code == 404
    assert leader.get("/api/v1/digests/subscription").json() == {"subscribed": False}
    refused = leader.put("/api/v1/digests/subscription", json={"email": "not an address"})
    assert refused.status_code == 422 and "e-mail" in refused.json()["detail"]
    ok = leader.put("/api/v1/digests/subscription", json={"email": "lanh.dao@dongnai.gov.vn"})
    assert ok.status_code == 200 and ok.json()["subscribed"] is True
    engine = open_database(settings.db_url)
    try:
        groups = subscriber_groups(engine, {"ban-giam-doc": ["gd@dongnai.gov.vn"]})
        assert groups[SUBSCRIBERS_GROUP] == ["lanh.dao@dongnai.gov.vn"]
        # An address already in a configured group is not sent twice.
        assert SUBSCRIBERS_GROUP not in subscriber_groups(engine, {"x": ["LANH.DAO@dongnai.gov.vn"]})
    finally:
        engine.dispose()
    assert leader.delete("/api/v1/digests/subscription").status_code == 204
    assert leader.get("/api/v1/digests/subscription").json()["subscribed"] is False


def test_rest_surface_users_sources_stories_saved_searches(settings: Settings) -> None:
    admin, staff = api(settings, "admin1"), api(settings, "staff1")
    schema = admin.get("/openapi.json").json()["paths"]
    for path in (
        "/api/v1/search",
        "/api/v1/documents/{doc_id}/labels",
        "/api/v1/stories",
        "/api/v1/stories/{cluster_id}",
        "/api/v1/sources/{source_id}",
        "/api/v1/sources/{source_id}/health",
        "/api/v1/saved-searches",
        "/api/v1/rules/{name}/dry-run",
        "/api/v1/alerts",
        "/api/v1/digests",
        "/api/v1/digests/subscription",
        "/api/v1/exports",
        "/api/v1/exports/{job_id}/download",
        "/api/v1/models",
        "/api/v1/labels",
        "/api/v1/users/{username}",
    ):
        assert path in schema, path
    assert set(schema["/api/v1/sources/{source_id}"]) >= {"get", "put", "delete"}
    story = staff.get("/api/v1/stories/c-flood").json()
    assert story["total"] == 3 and {h["cluster_id"] for h in story["hits"]} == {"c-flood"}
    assert staff.get("/api/v1/stories/nope").status_code == 404
    assert staff.get('/api/v1/stories/a"b').status_code == 422
    # Users: change a role, deactivate, never yourself.
    created = admin.post(
        "/api/v1/users", json={"username": "tam.thoi", "password": "mat-khau-dai-du", "role": "staff"}
    )
    assert created.status_code == 201
    assert admin.patch("/api/v1/users/tam.thoi", json={"role": "leader"}).json()["role"] == "leader"
    assert admin.patch("/api/v1/users/tam.thoi", json={"active": False}).json()["active"] is False
    assert admin.patch("/api/v1/users/tam.thoi", json={"password": "ngan"}).status_code == 422
    assert admin.patch("/api/v1/users/admin1", json={"active": False}).status_code == 409
    assert admin.patch("/api/v1/users/khong-co", json={"role": "staff"}).status_code == 404
    assert staff.patch("/api/v1/users/tam.thoi", json={"role": "admin"}).status_code == 403
    # Sources: health of one, delete.
    assert admin.get("/api/v1/sources/baodongnai/health").json()["status"] == "never_run"
    admin.put("/api/v1/sources/xoa", json={"name": "Xóa", "type": "rss", "start_urls": ["https://x.vn/rss"]})
    assert staff.delete("/api/v1/sources/xoa").status_code == 403
    assert admin.delete("/api/v1/sources/xoa").status_code == 204
    assert admin.get("/api/v1/sources/xoa").status_code == 404
    # Saved searches are per user and validated.
    saved = staff.put(
        "/api/v1/saved-searches/ngap", json={"query": "ngập", "filters": {"topic": "moi-truong"}}
    )
    assert saved.status_code == 200 and saved.json()["filters"] == {"topic": "moi-truong"}
    assert staff.put("/api/v1/saved-searches/hong", json={"query": '"mở'}).status_code == 422
    assert [s["name"] for s in staff.get("/api/v1/saved-searches").json()] == ["ngap"]
    assert admin.get("/api/v1/saved-searches").json() == []
    assert staff.delete("/api/v1/saved-searches/ngap").status_code == 204


def test_a_saved_rule_can_be_test_run(settings: Settings) -> None:
    staff = api(settings, "staff1")
    rule = {"name": "ngap-thu", "rule_type": "match", "query": "ngập", "channels": []}
    assert staff.post("/api/v1/rules", json=rule).status_code == 201
    dry = staff.post("/api/v1/rules/ngap-thu/dry-run").json()
    assert dry["rule"] == "ngap-thu" and dry["evaluations"] > 0 and dry["alerts"]
    assert api(settings, "leader1").post("/api/v1/rules/ngap-thu/dry-run").status_code == 403


def test_result_cache_follows_the_index_generation_ttl_and_size() -> None:
    import threading
    import time

    from duluan.web_helpers import ResultCache

    generation = [1]
    calls: list[str] = []

    def compute(key: str) -> str:
        calls.append(key)
        time.sleep(0.05)
        return f"{key}@{generation[0]}"

    cache = ResultCache(lambda: generation[0], max_entries=2, ttl_s=60)
    assert cache.get_or_compute("a", lambda: compute("a")) == "a@1"
    assert cache.get_or_compute("a", lambda: compute("a")) == "a@1" and calls == ["a"]
    generation[0] = 2  # a commit: nothing computed before it is served
    assert cache.get_or_compute("a", lambda: compute("a")) == "a@2" and calls == ["a", "a"]
    cache.get_or_compute("b", lambda: compute("b"))
    cache.get_or_compute("c", lambda: compute("c"))  # evicts the least recently used, "a"
    cache.get_or_compute("a", lambda: compute("a"))
    assert calls == ["a", "a", "b", "c", "a"]
    # Concurrent misses on one key compute it once.
    calls.clear()
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_or_compute("d", lambda: compute("d"))))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["d"] and results == ["d@2"] * 8
    expired = ResultCache(lambda: 1, ttl_s=0.0)
    expired.get_or_compute("x", lambda: compute("x"))
    expired.get_or_compute("x", lambda: compute("x"))
    assert calls.count("x") == 2


def test_search_pages_are_never_staler_than_the_index(settings: Settings) -> None:
    staff = api(settings, "staff1")
    before = staff.get("/api/v1/search", params={"q": "khinh khí cầu"}).json()["total"]
    backend = open_backend(settings)
    doc = backend.get("doc7")
    assert doc is not None
    backend.upsert([doc.model_copy(update={"id": "doc-new", "title": "Lễ hội khinh khí cầu"})])
    backend.close()
    assert staff.get("/api/v1/search", params={"q": "khinh khí cầu"}).json()["total"] == before + 1


def test_dates_outside_what_the_index_stores_are_refused_clearly(settings: Settings) -> None:
    staff = api(settings, "staff1")
    for params in ({"to": "2999-12-28"}, {"from": "1200-01-01"}, {"to": "31/12/2026"}):
        response = staff.get("/api/v1/search", params={"q": "ngập", **params})
        assert response.status_code == 400, response.text
        assert "YYYY-MM-DD" in response.json()["detail"] or "between" in response.json()["detail"]
    refused = staff.post("/api/v1/exports", json={"q": "ngập", "to": "2999-01-01"})
    assert refused.status_code == 422 and "between" in refused.json()["detail"]


def test_the_alert_outbox_lists_undelivered_messages(settings: Settings) -> None:
    from alerts.engine import run_rules_once

    analyst, staff = api(settings, "analyst1"), api(settings, "staff1")
    rule = {
        "name": "Ngập gửi thư",
        "rule_type": "match",
        "query": "ngập",
        "params": {"first_run_lookback_minutes": 3000},
        "channels": [{"channel": "email", "recipients": ["ioc@dongnai.gov.vn"]}],
    }
    assert analyst.post("/api/v1/rules", json=rule).status_code == 201
    engine, backend = open_database(settings.db_url), open_backend(settings)
    try:
        run_rules_once(backend, engine, datetime.now(UTC))
    finally:
        backend.close()
        engine.dispose()
    outbox = analyst.get("/api/v1/outbox", params={"status": "pending"}).json()
    mine = [o for o in outbox if o["rule"] == "Ngập gửi thư"]
    assert mine and mine[0]["recipient"] == "ioc@dongnai.gov.vn" and mine[0]["channel"] == "email"
    assert all(o["rule"] != "Ngập gửi thư" for o in staff.get("/api/v1/outbox").json())  # not their rule
    assert analyst.get("/api/v1/digests/deliveries").status_code == 200
    assert staff.get("/api/v1/digests/deliveries").status_code == 403
    client = browser(settings)
    login(client, "analyst1")
    page = client.get("/alerts").text
    assert "Chưa gửi được" in page and "ioc@dongnai.gov.vn" in page


def test_export_jobs_can_be_cancelled_and_a_stopped_server_says_so(
    settings: Settings, tmp_path: Path
) -> None:
    from duluan.export_jobs import ExportJobs
    from index.backend import SearchFilters

    class SlowBackend:
        """The real index, scanned slowly enough to cancel mid-way."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def count(self, query: str = "", filters: SearchFilters | None = None) -> int:
            return 5000

        def scan(self, query: str = "", filters: SearchFilters | None = None) -> Iterator[Any]:
            import time

            docs = list(self.inner.scan("", None))
            for i in range(5000):
                time.sleep(0.0005)
                yield docs[i % len(docs)]

    backend = open_backend(settings)
    try:
        jobs = ExportJobs(tmp_path / "exports")
        job = jobs.start(SlowBackend(backend), "staff1", "", SearchFilters(), "csv")  # type: ignore[arg-type]
        other = ExportJobs(tmp_path / "exports")  # another worker process of the web app
        while jobs.get(job.id).rows < 500:
            pass
        other.cancel(job.id)
        deadline = datetime.now(UTC).timestamp() + 5
        while (tmp_path / "exports" / job.id).exists() and datetime.now(UTC).timestamp() < deadline:
            pass
        assert not (tmp_path / "exports" / job.id).exists()  # stopped mid-way, nothing kept
        second = jobs.start(SlowBackend(backend), "staff1", "", SearchFilters(), "xlsx")  # type: ignore[arg-type]
        jobs.close()  # the server stops mid-export
        stopped = other.get(second.id)
        assert stopped.state == "failed" and "stopped" in (stopped.error or "")
    finally:
        backend.close()


def test_the_date_facet_narrows_the_search(settings: Settings) -> None:
    from html import unescape
    from urllib.parse import parse_qs, urlsplit

    client = browser(settings)
    login(client, "staff1")
    page = client.get("/", params={"q": "Đồng Xoài"}).text
    link = unescape(page.split('<section class="date-facet">')[1].split('href="')[2].split('"')[0])
    query = parse_qs(urlsplit(link).query)
    today = datetime.now(settings.tz).date()
    assert query["q"] == ["Đồng Xoài"] and query["to"] == [today.isoformat()]
    assert (today - date.fromisoformat(query["from"][0])).days == 6  # "7 ngày qua"
    narrowed = client.get(link).text
    assert 'aria-current="true">7 ngày qua' in narrowed and '<strong id="total">' in narrowed
