"""The UI in a real browser: Debian's chromium driven by Playwright against `duluan serve`.

Screenshots of each main page go to test-artifacts/ (gitignored) for people to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.web.conftest import ARTIFACTS, CHROMIUM, HOSTILE_TITLE, PASSWORD, LiveServer

playwright_sync = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium (make system-deps)")

BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=BROWSER_ARGS)
        yield instance
        instance.close()


def _page(browser: Any, server: LiveServer) -> Any:
    context = browser.new_context(
        base_url=server.url, locale="vi-VN", viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(10_000)
    return context.new_page()


def _login(page: Any, username: str) -> None:
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_anonymous_is_sent_to_login_and_wrong_password_is_refused(
    browser: Any, live_server: LiveServer
) -> None:
    page = _page(browser, live_server)
    page.goto("/alerts")
    assert "/login?next=/alerts" in page.url
    _shot(page, "login")
    page.fill("input[name=username]", "analyst1")
    page.fill("input[name=password]", "sai-mat-khau-roi")
    page.click("button[type=submit]")
    assert "Sai tên đăng nhập hoặc mật khẩu" in page.inner_text(".error")
    page.context.close()


def test_analyst_searches_opens_corrects_and_dry_runs_a_rule(browser: Any, live_server: LiveServer) -> None:
    page = _page(browser, live_server)
    _login(page, "analyst1")
    # Boolean query; results collapsed by story with "N báo đăng".
    page.fill("input[name=q]", '"Đồng Xoài" AND (ngập OR cháy) NOT bóng')
    page.click("form.search button[type=submit]")
    page.wait_for_selector("#total")
    assert int(page.inner_text("#total")) == 4  # three flood copies + the market fire
    assert "3 báo đăng" in page.inner_text(".results")
    assert page.locator("svg.chart rect.bar").count() >= 1  # the volume chart
    assert page.locator(".facets").inner_text().count("Tài nguyên – Môi trường") == 1
    _shot(page, "search")

    # Open the flood story's document and correct its sentiment.
    page.locator("a.doc-link", has_text="ngập").first.click()
    page.wait_for_selector("#doc-title")
    assert page.inner_text("#doc-sentiment") == "Tiêu cực"
    page.select_option("#correct-sentiment", "neutral")
    page.click("#save-sentiment")
    page.wait_for_selector(".ok")
    assert page.inner_text("#doc-sentiment") == "Trung lập"
    assert "analyst1" in page.inner_text("table")  # the correction's history
    _shot(page, "document")

    # A new alert rule from the editor, dry-run over the last 7 days, then saved.
    page.goto("/alerts")
    page.click("#new-rule")
    page.fill("input[name=name]", "Ngập ở Đồng Xoài")
    page.select_option("select[name=rule_type]", "match")
    page.fill("input[name=query]", 'ngập AND "Đồng Xoài"')
    page.click("#dry-run")
    page.wait_for_selector("#dry-run-result")
    assert int(page.inner_text("#dry-run-count")) >= 1
    assert "ngập" in page.inner_text("#dry-run-result").lower()
    _shot(page, "rule-dry-run")
    page.click("#save-rule")
    page.wait_for_url("**/alerts?saved=1")
    assert "Ngập ở Đồng Xoài" in page.inner_text("table.rules")
    _shot(page, "alerts")

    for path, name in (
        ("/overview", "overview"),
        ("/sources", "sources"),
        ("/models", "models"),
        ("/labels/queue", "label-queue"),
    ):
        page.goto(path)
        assert page.locator("h1").count() == 1 and "error" not in page.inner_text("main")[:200].lower()
        _shot(page, name)
    page.context.close()


def test_leader_opens_a_digest(browser: Any, live_server: LiveServer) -> None:
    page = _page(browser, live_server)
    _login(page, "leader1")
    page.goto("/digests")
    _shot(page, "digests")
    page.locator("ul.digests a").first.click()
    frame = page.frame_locator("iframe.digest")
    frame.locator("body").wait_for()
    assert "Đồng Nai" in frame.locator("body").inner_text()
    _shot(page, "digest")
    pdf = page.request.get(page.get_attribute("#digest-pdf", "href"))
    assert pdf.status == 200 and pdf.body().startswith(b"%PDF")
    # Subscribe to the morning e-mail, then unsubscribe.
    page.goto("/digests")
    page.fill("input[name=email]", "lanh.dao@dongnai.gov.vn")
    page.click("#subscribe")
    page.wait_for_selector("#subscription")
    assert "lanh.dao@dongnai.gov.vn" in page.inner_text("#subscription")
    page.click("#unsubscribe")
    page.wait_for_selector("#subscribe")
    # Leaders read; they do not edit alert rules.
    page.goto("/alerts")
    assert "Không có quyền truy cập" in page.inner_text("h1")
    page.context.close()


def test_crawled_script_is_shown_as_text(browser: Any, live_server: LiveServer) -> None:
    page = _page(browser, live_server)
    _login(page, "staff1")
    page.goto("/?q=cháy+chợ&view=list")
    assert HOSTILE_TITLE in page.inner_text(".results")
    assert page.evaluate("window.__pwned") is None
    page.locator("a.doc-link").first.click()
    page.wait_for_selector("#doc-title")
    assert page.inner_text("#doc-title") == HOSTILE_TITLE
    assert "<script>steal()</script>" in page.inner_text(".body")
    assert page.evaluate("window.__pwned") is None
    link = page.locator("a", has_text="Mở bài gốc")
    assert link.get_attribute("rel") == "noopener noreferrer"
    _shot(page, "document-hostile")
    page.context.close()


def test_staff_cannot_open_admin_pages(browser: Any, live_server: LiveServer) -> None:
    page = _page(browser, live_server)
    _login(page, "staff1")
    assert page.locator("nav a", has_text="Người dùng").count() == 0
    for path in ("/admin/users", "/sources/edit"):
        response = page.goto(path)
        assert response is not None and response.status == 403
        assert "Không có quyền truy cập" in page.inner_text("h1")
    _shot(page, "forbidden")
    # The admin sees the same pages.
    admin = _page(browser, live_server)
    _login(admin, "admin1")
    response = admin.goto("/admin/users")
    assert response is not None and response.status == 200 and "staff1" in admin.inner_text("table")
    _shot(admin, "users")
    admin.context.close()
    page.context.close()


def test_staff_exports_with_progress_then_switches_to_english(browser: Any, live_server: LiveServer) -> None:
    page = _page(browser, live_server)
    _login(page, "staff1")
    page.goto("/?q=ngập&view=list")
    page.select_option("#export-form select[name=format]", "csv")
    page.click("#export-start")  # app.js starts the job through the API and polls its progress
    page.wait_for_selector("#export-download")
    assert page.locator("#export-progress progress").get_attribute("value") == "100"
    with page.expect_download() as download:
        page.click("#export-download")
    content = download.value.path().read_text(encoding="utf-8-sig")
    assert content.startswith("id,url,title") and content.count("baodongnai.com.vn") >= 1
    _shot(page, "export")
    page.goto("/exports")
    assert page.locator("tr.job[data-state=done]").count() >= 1
    _shot(page, "exports")
    # English, once: the switch in the header keeps the page and remembers the choice.
    page.goto("/?q=ngập")
    page.click("#lang-en")
    page.wait_for_selector("html[lang=en]")
    assert "Search the news" in page.inner_text("h1")
    assert "outlets" in page.inner_text(".results") and "Export results" in page.inner_text(".results")
    page.goto("/overview")
    assert "Top stories (48 hours)" in page.inner_text("main")
    _shot(page, "overview-en")
    page.context.close()
