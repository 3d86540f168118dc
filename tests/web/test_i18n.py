"""The English catalog is complete (every text the UI marks for translation has an English entry with
the same placeholders, and no entry is stale), and the language switch works end to end."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import jinja2
from fastapi.testclient import TestClient
from jinja2 import nodes

from alerts.rules import RULE_TYPES
from duluan import i18n
from duluan.accounts import ROLES
from schema import SENTIMENTS, TOPICS

PACKAGE = Path(i18n.__file__).resolve().parents[1]
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def marked_texts() -> dict[str, str]:
    """Every Vietnamese text the UI translates → where it was found."""
    found: dict[str, str] = {}
    env = jinja2.Environment()
    for path in sorted((PACKAGE / "templates").glob("*.html")):
        for call in env.parse(path.read_text(encoding="utf-8")).find_all(nodes.Call):
            if isinstance(call.node, nodes.Name) and call.node.name == "_" and call.args:
                first = call.args[0]
                if isinstance(first, nodes.Const) and isinstance(first.value, str):
                    found.setdefault(first.value, path.name)
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "N_":
                arg = node.args[0] if node.args else None
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.setdefault(arg.value, path.name)
    names = [*TOPICS.values(), *SENTIMENTS.values(), *ROLES.values()]
    names += [cls.description_vi for cls in RULE_TYPES.values()]
    for name in names:
        found.setdefault(name, "names of topics, sentiments, roles, rule types")
    return found


def test_every_marked_text_has_an_english_entry_with_the_same_placeholders() -> None:
    texts = marked_texts()
    assert len(texts) > 150  # the extraction really walks the templates
    english = i18n.catalog("en")
    missing = {text: where for text, where in texts.items() if not english.get(text, "").strip()}
    assert not missing, f"add English for these to duluan/i18n/en.json: {missing}"
    stale = sorted(set(english) - set(texts))
    assert not stale, f"remove entries no template uses from duluan/i18n/en.json: {stale}"
    for text, translation in english.items():
        assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(translation)), text
        assert translation != text or text in ("Email",), f"{text!r} is not translated"


def test_translator_fills_placeholders_and_falls_back_to_vietnamese() -> None:
    en, vi = i18n.translator("en"), i18n.translator("vi")
    assert en("{n} báo đăng", n=3) == "3 outlets" and vi("{n} báo đăng", n=3) == "3 báo đăng"
    assert en("văn bản chưa dịch") == "văn bản chưa dịch"
    assert i18n.language_of("fr") == "vi" and i18n.language_of("en") == "en"
    assert i18n.translated(SENTIMENTS, "en")["negative"] == "Negative"


def test_the_language_switch_is_a_cookie_and_pages_follow_it(tmp_path: Path) -> None:
    from duluan.web import create_app
    from tests.web.conftest import PASSWORD, build_home

    settings = build_home(tmp_path / "home")
    client = TestClient(create_app(settings))
    page = client.get("/login")
    assert '<html lang="vi">' in page.text and "Đăng nhập" in page.text
    switched = client.get("/lang/en", params={"next": "/login"}, follow_redirects=False)
    assert switched.status_code == 303 and switched.headers["location"] == "/login"
    assert "duluan_lang=en" in switched.headers["set-cookie"]
    assert (
        client.get("/lang/en", params={"next": "https://evil.example/"}, follow_redirects=False).headers[
            "location"
        ]
        == "/"
    )
    assert client.get("/lang/fr").status_code == 404
    page = client.get("/login")
    assert '<html lang="en">' in page.text and "Sign in" in page.text and "Đăng nhập" not in page.text
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    wrong = client.post(
        "/login", data={"username": "admin1", "password": "sai-mat-khau-roi", "csrf_token": csrf}
    )
    assert "Wrong username or password." in wrong.text
    csrf = wrong.text.split('name="csrf_token" value="')[1].split('"')[0]
    client.post("/login", data={"username": "admin1", "password": PASSWORD, "csrf_token": csrf})
    for url, english in {
        "/": "Search the news",
        "/overview": "Sentiment over the last 14 days",
        "/alerts": "Alert history",
        "/alerts/rules/edit": "Dry run over the last 7 days",
        "/digests": "Receive the digest every morning by e-mail:",
        "/sources": "Last success",
        "/models": "Analysis models",
        "/labels/queue": "Labelling queue",
        "/exports": "No exports yet.",
        "/admin/users": "Audit log",
        "/documents/doc1": "Correct labels",
    }.items():
        response = client.get(url)
        assert response.status_code == 200 and english in response.text, url
    assert "Natural resources – Environment" in client.get("/documents/doc1").text
    client.get("/lang/vi")
    assert "Tìm kiếm tin tức" in client.get("/").text
