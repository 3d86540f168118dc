"""The web app: a Vietnamese UI for staff, leaders and analysts, and the REST API under /api/v1.

Every route except the login page, /healthz, /readyz and /static needs a signed-in user: a session
cookie for the UI (HttpOnly, SameSite=Lax, Secure behind TLS; forms carry a CSRF token) or a bearer
API token for scripts. Each route checks a capability (see `duluan.accounts.PERMISSIONS`), never a
role name. Crawled text is untrusted: templates autoescape it, links go through `safe_http_url`, and
every response carries a strict Content-Security-Policy (no inline scripts, no third-party origins).
"""

import csv
import io
import json
import re
import secrets
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from itertools import islice
from pathlib import Path
from time import monotonic as time_monotonic
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field, ValidationError, field_validator
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alerts.rules import RULE_TYPES
from alerts.store import (
    RuleSpec,
    RuleValidationError,
    StoredRule,
    alert_deliveries,
    alerts,
    delete_rule,
    digest_deliveries,
    get_rule,
    load_rules,
    save_rule,
    validate_rule,
)
from crawlers.health import source_health
from crawlers.registry import (
    CHECK_TARGETS,
    SourceKind,
    SourceSpec,
    get_source,
    list_sources,
    set_enabled,
    sources_table,
    upsert_sources,
)
from duluan import accounts, i18n
from duluan import digest_subscriptions as subscriptions
from duluan.accounts import ROLES, LoginThrottle, Session, User
from duluan.db import open_database
from duluan.export_jobs import MEDIA_TYPES, ExportJob, ExportJobError, ExportJobs
from duluan.i18n import N_
from duluan.settings import Settings
from duluan.web_helpers import (
    MODEL_TASKS,
    ResultCache,
    digest_path,
    digest_pdf_path,
    dry_run_rule,
    index_generation,
    least_certain,
    list_digests,
    model_summaries,
    safe_http_url,
    svg_bar_chart,
    svg_stacked_sentiment,
)
from duluan.web_security import install_ops_routes
from duluan.wiring import open_backend
from index.backend import HistogramInterval, QueryError, SearchBackend, SearchFilters
from index.saved_searches import (
    SavedSearchError,
    delete_search,
    filters_from_json,
    filters_to_json,
    list_searches,
    save_search,
)
from schema import SENTIMENTS, TOPICS, Document, SourceType

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
TEMPLATES.env.filters["safe_url"] = safe_http_url
SESSION_COOKIE = "duluan_session"
LOGIN_CSRF_COOKIE = "duluan_login_csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FACET_FIELDS = ("topic", "sentiment", "source", "source_type", "entity")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; frame-src 'self'"
)
#: Archived digests are self-contained HTML with inline CSS and data-URI charts: no scripts at all.
DIGEST_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
CSV_DANGEROUS_START = ("=", "+", "-", "@", "\t", "\r")
EXPORT_MAX_ROWS = 50_000
TOKEN_CACHE_S = 30.0
#: The labelling queue ranks at most this many recent documents (keeps the page fast on big indexes).
QUEUE_SCAN_MAX = 5_000
#: Result pages with more hits than this are not cached (bounds the cache to ~512 small pages).
CACHE_MAX_HITS = 60
#: Days a search may name (the index stores nanosecond timestamps: roughly 1678–2262).
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2199, 12, 31)
#: Titles of error pages people see (the API keeps the HTTP phrase).
UI_STATUS_TITLES = {
    400: N_("Yêu cầu không hợp lệ"),
    403: N_("Không có quyền truy cập"),
    404: N_("Không tìm thấy"),
    409: N_("Xung đột dữ liệu"),
    422: N_("Dữ liệu không hợp lệ"),
    429: N_("Quá nhiều yêu cầu"),
}


# -- errors --------------------------------------------------------------------------------------------


class NotAuthenticated(Exception):
    """No valid session or token."""


class Forbidden(Exception):
    """Signed in, but the role lacks the capability."""

    def __init__(self, capability: str) -> None:
        super().__init__(capability)
        self.capability = capability


def _problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    """RFC 9457 problem details: a message staff can act on."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def csv_safe(value: object) -> str:
    """A CSV cell that a spreadsheet will never run as a formula (CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(CSV_DANGEROUS_START) else text


class SecurityHeaders:
    """The headers every response carries (a route may set its own value first, e.g. the digest's
    CSP). A plain ASGI middleware: it edits the response start message and adds no task per request."""

    def __init__(self, app: ASGIApp, hsts: bool = False) -> None:
        self.app = app
        self.defaults = [
            ("Content-Security-Policy", CSP),
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
            ("Referrer-Policy", "same-origin"),
            ("Cross-Origin-Opener-Policy", "same-origin"),
        ]
        if hsts:
            self.defaults.append(("Strict-Transport-Security", "max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.defaults:
                    headers.setdefault(name, value)
                if not static:
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


# -- API models ----------------------------------------------------------------------------------------


class SearchHitOut(BaseModel):
    id: str
    url: str
    title: str
    published_at: datetime | None
    source: str
    source_type: str
    topic: str | None
    sentiment: str | None
    cluster_id: str | None
    score: float
    highlights: dict[str, str]
    story_documents: int | None = None
    story_outlets: int | None = None


class FacetBucket(BaseModel):
    value: str
    count: int


class SearchOut(BaseModel):
    total: int
    hits: list[SearchHitOut]
    facets: dict[str, list[FacetBucket]] | None = None
    histogram: list[tuple[datetime, int]] | None = None


class LabelIn(BaseModel):
    field: Literal["topic", "sentiment", "relevance"]
    value: str = Field(min_length=1, max_length=64)


class DigestRenderIn(BaseModel):
    day: date | None = None


class UserIn(BaseModel):
    username: str
    password: str
    role: str
    display_name: str = ""


class TokenIn(BaseModel):
    name: str = Field("script", max_length=200)


class UserPatch(BaseModel):
    role: str | None = None
    active: bool | None = None
    password: str | None = None


class ExportIn(BaseModel):
    """What to export: the same query language and filters as /api/v1/search."""

    q: str = Field("", max_length=10_000)
    topic: str | None = None
    sentiment: str | None = None
    source: str | None = None
    source_type: str | None = None
    date_from: date | None = Field(None, alias="from")
    date_to: date | None = Field(None, alias="to")
    format: Literal["csv", "xlsx"] = "csv"

    model_config = {"populate_by_name": True}

    @field_validator("date_from", "date_to")
    @classmethod
    def _in_range(cls, value: date | None) -> date | None:
        if value is not None and not FIRST_DAY <= value <= LAST_DAY:
            raise ValueError(f"use a day between {FIRST_DAY} and {LAST_DAY}")
        return value


class SubscriptionIn(BaseModel):
    email: str = Field(min_length=3, max_length=320)


class SavedSearchIn(BaseModel):
    query: str = Field("", max_length=10_000)
    filters: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class SearchParams:
    q: str = ""
    topic: str | None = None
    sentiment: str | None = None
    source: str | None = None
    source_type: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    sort: Literal["relevance", "date"] = "relevance"
    limit: int = 20
    offset: int = 0

    def filters(self, settings: Settings) -> SearchFilters:
        tz = settings.tz
        return SearchFilters(
            topic=self.topic or None,
            sentiment=self.sentiment or None,
            source=self.source or None,
            source_type=self.source_type or None,
            date_from=datetime.combine(self.date_from, time.min, tz) if self.date_from else None,
            date_to=datetime.combine(self.date_to + timedelta(days=1), time.min, tz)
            if self.date_to
            else None,
        )


def _hit_out(hit: Any, documents: int | None = None, outlets: int | None = None) -> SearchHitOut:
    d: Document = hit.document
    return SearchHitOut(
        id=d.id,
        url=d.url,
        title=d.title,
        published_at=d.published_at,
        source=d.source,
        source_type=d.source_type.value,
        topic=d.topic,
        sentiment=d.sentiment,
        cluster_id=d.cluster_id,
        score=hit.score,
        highlights=hit.highlights,
        story_documents=documents,
        story_outlets=outlets,
    )


def _parse_day(value: str | None) -> date | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise HTTPException(400, f"{value!r} is not a date; use YYYY-MM-DD") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise HTTPException(400, f"{value!r} is out of range; use a day between {FIRST_DAY} and {LAST_DAY}")
    return day


# -- the app -------------------------------------------------------------------------------------------


class WebState:
    """What the routes share: settings, the app database and one search backend for the process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = open_database(settings.db_url)
        self._backend: SearchBackend | None = None
        self._backend_lock = threading.Lock()
        self.throttle_user = LoginThrottle(max_failures=5)
        self.throttle_ip = LoginThrottle(max_failures=30)
        self.secure_cookies = settings.alerts.ui_base_url.lower().startswith("https://")
        self._token_cache: dict[str, tuple[float, User | None]] = {}
        self.exports = ExportJobs(settings.home / "exports")
        embedded = settings.index.backend == "tantivy"
        generation = index_generation(settings.index_dir if embedded else None)
        self.results = ResultCache(generation, ttl_s=60.0, max_entries=512)

    def user_for_token(self, token: str) -> User | None:
        """Bearer-token lookup, remembered for TOKEN_CACHE_S so scripts under load skip a database read
        per request (a revoked token stops working within that time)."""
        now = time_monotonic()
        cached = self._token_cache.get(token)
        if cached is not None and now - cached[0] < TOKEN_CACHE_S:
            return cached[1]
        user = accounts.user_for_api_token(self.engine, token)
        if len(self._token_cache) > 10_000:
            self._token_cache.clear()
        self._token_cache[token] = (now, user)
        return user

    @property
    def backend(self) -> SearchBackend:
        with self._backend_lock:
            if self._backend is None:
                self._backend = open_backend(self.settings)
            return self._backend

    def close(self) -> None:
        self.exports.close()
        with self._backend_lock:
            if self._backend is not None:
                self._backend.close()
                self._backend = None
        self.engine.dispose()

    def audit(self, user: User, action: str, object_type: str, object_id: str, **details: Any) -> None:
        accounts.record_audit(self.engine, user.username, action, object_type, object_id, details)


def create_app(settings: Settings) -> FastAPI:
    st = WebState(settings)
    TEMPLATES.env.filters["local"] = lambda value: local_time(value, settings.tz)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        st.close()

    app = FastAPI(
        lifespan=lifespan,
        # No Swagger/ReDoc pages: they load scripts from a CDN. The schema itself needs a user.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        title="Duluan API",
        version="0.2.0",
        description="Giám sát thông tin báo chí, mạng xã hội. Authenticate with "
        "`Authorization: Bearer <token>` (create one with `duluan users token NAME`).",
    )
    app.state.web = st
    install_ops_routes(app, st)  # /metrics and extra security headers (duluan/web_security.py)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    app.add_middleware(SecurityHeaders, hsts=st.secure_cookies)

    # ---- error handling: JSON problem details for the API, a page for people ----

    def _error_page(request: Request, status: int, title: str, detail: str) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(
            request,
            "error.html",
            _ctx(request, title=title, detail=detail, status=status),
            status_code=status,
        )

    @app.exception_handler(NotAuthenticated)
    async def _not_authenticated(request: Request, _exc: NotAuthenticated) -> Response:
        if _is_api(request):
            response = _problem(
                401,
                "Not signed in",
                "Send 'Authorization: Bearer <token>' (create one with `duluan users token NAME`) "
                "or sign in at /login.",
            )
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={_quote(target)}", status_code=303)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        user = getattr(request.state, "user", None)
        role = ROLES.get(user.role, "?") if user else "?"
        detail = (
            f"Vai trò {role} không được phép dùng chức năng này ({exc.capability}); hãy liên hệ quản trị."
        )
        if _is_api(request):
            return _problem(403, "Forbidden", detail, capability=exc.capability)
        return _error_page(request, 403, N_("Không có quyền truy cập"), detail)

    @app.exception_handler(QueryError)
    async def _query_error(request: Request, exc: QueryError) -> Response:
        return _problem(400, "Invalid query", str(exc), detail_vi=exc.message_vi, position=exc.position)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _is_api(request) or request.url.path in ("/healthz", "/readyz"):
            return _problem(exc.status_code, _status_title(exc.status_code), str(exc.detail))
        title = UI_STATUS_TITLES.get(exc.status_code) or _status_title(exc.status_code)
        return _error_page(request, exc.status_code, title, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
        detail = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        if _is_api(request):
            return _problem(422, "Invalid request", detail, errors=problems)
        return _error_page(request, 422, N_("Dữ liệu không hợp lệ"), detail)

    # ---- authentication and authorisation ----

    def _resolve(request: Request) -> tuple[User | None, Session | None]:
        if hasattr(request.state, "resolved"):
            resolved: tuple[User | None, Session | None] = request.state.resolved
            return resolved
        user: User | None = None
        session: Session | None = None
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            user = st.user_for_token(auth[7:].strip())
        else:
            session = accounts.session_for(st.engine, request.cookies.get(SESSION_COOKIE, ""))
            user = session.user if session else None
        request.state.resolved = (user, session)
        request.state.user = user
        request.state.csrf = session.csrf_token if session else ""
        return user, session

    def require(capability: str) -> Callable[[Request], Awaitable[User]]:
        async def dependency(request: Request) -> User:
            user, session = _resolve(request)
            if user is None:
                raise NotAuthenticated()
            if request.method not in SAFE_METHODS and session is not None:
                sent = request.headers.get("x-csrf-token")
                if sent is None and "form" in request.headers.get("content-type", ""):
                    sent = str((await request.form()).get("csrf_token", ""))
                if not secrets.compare_digest(sent or "", session.csrf_token):
                    raise HTTPException(
                        403, "Phiên làm việc hết hạn hoặc biểu mẫu không hợp lệ (CSRF); hãy tải lại trang."
                    )
            if not user.can(capability):
                raise Forbidden(capability)
            return user

        return dependency

    def _ctx(request: Request, **extra: Any) -> dict[str, Any]:
        user = getattr(request.state, "user", None)
        lang = i18n.language_of(request.cookies.get(i18n.LANG_COOKIE))
        return {
            "user": user,
            "csrf": getattr(request.state, "csrf", ""),
            "lang": lang,
            "languages": i18n.LANGUAGES,
            "_": i18n.translator(lang),
            "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            "roles": i18n.translated(ROLES, lang),
            "topics": i18n.translated(TOPICS, lang),
            "sentiments": i18n.translated(SENTIMENTS, lang),
            "source_types": [t.value for t in SourceType],
            "path": request.url.path,
            **extra,
        }

    def page(request: Request, template: str, **extra: Any) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(request, template, _ctx(request, **extra))

    # ---- probes ----

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], response_model=None)
    def readyz() -> dict[str, Any] | JSONResponse:
        """Readiness: the app database and the index can be opened."""
        checks: dict[str, str] = {}
        try:
            with st.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # report, do not crash: this endpoint exists to say what is wrong
            checks["database"] = f"error: {type(exc).__name__}"
        try:
            st.backend.count()
            checks["index"] = "ok"
        except Exception as exc:
            checks["index"] = f"error: {type(exc).__name__}"
        ok = all(v == "ok" for v in checks.values())
        body = {"status": "ok" if ok else "unavailable", "checks": checks}
        return body if ok else JSONResponse(body, status_code=503)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_schema(_user: Annotated[User, Depends(require("search"))]) -> JSONResponse:
        """The OpenAPI schema of /api/v1 (for generating clients); any signed-in user may read it."""
        return JSONResponse(app.openapi())

    @app.get("/lang/{code}", include_in_schema=False)
    def set_language(code: str, next: str = "/") -> RedirectResponse:
        """Switch the UI language (vi or en); the choice is kept in a cookie for a year."""
        if code not in i18n.LANGUAGES:
            raise HTTPException(404, f"unknown language {code!r}; use one of {', '.join(i18n.LANGUAGES)}")
        response = RedirectResponse(_safe_next(next), status_code=303)
        response.set_cookie(
            i18n.LANG_COOKIE, code, samesite="lax", secure=st.secure_cookies, max_age=365 * 86400, path="/"
        )
        return response

    # ---- login / logout ----

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page(request: Request, next: str = "/") -> HTMLResponse:
        token = secrets.token_urlsafe(24)
        response = page(
            request, "login.html", login_csrf=token, next=_safe_next(next), error=None, error_values={}
        )
        response.set_cookie(
            LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=st.secure_cookies, max_age=3600
        )
        return response

    @app.post("/login", include_in_schema=False, response_model=None)
    def login(
        request: Request,
        username: Annotated[str, Form(max_length=64)],
        password: Annotated[str, Form(max_length=1024)],
        csrf_token: Annotated[str, Form()] = "",
        next: Annotated[str, Form()] = "/",
    ) -> Response:
        cookie_token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        client = request.client.host if request.client else "?"
        keys_user, keys_ip = [f"user:{username.strip().lower()}"], [f"ip:{client}"]
        now = datetime.now(UTC)

        def fail(message: str, status: int, **values: object) -> HTMLResponse:
            token = secrets.token_urlsafe(24)
            response = page(
                request,
                "login.html",
                login_csrf=token,
                next=_safe_next(next),
                error=message,
                error_values=values,
            )
            response.status_code = status
            response.set_cookie(
                LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=st.secure_cookies
            )
            return response

        if not cookie_token or not secrets.compare_digest(cookie_token, csrf_token):
            return fail(N_("Biểu mẫu đăng nhập đã hết hạn; hãy thử lại."), 400)
        wait = max(st.throttle_user.retry_after(keys_user, now), st.throttle_ip.retry_after(keys_ip, now))
        if wait:
            message = N_("Đăng nhập sai quá nhiều lần; hãy thử lại sau {minutes} phút.")
            response = fail(message, 429, minutes=wait // 60 + 1)
            response.headers["Retry-After"] = str(wait)
            return response
        user = accounts.authenticate(st.engine, username, password)
        if user is None:
            st.throttle_user.failed(keys_user, now)
            st.throttle_ip.failed(keys_ip, now)
            return fail(N_("Sai tên đăng nhập hoặc mật khẩu."), 401)
        st.throttle_user.succeeded(keys_user)
        session = accounts.create_session(st.engine, user)
        redirect = RedirectResponse(_safe_next(next), status_code=303)
        redirect.set_cookie(
            SESSION_COOKIE,
            session.token,
            httponly=True,
            samesite="lax",
            secure=st.secure_cookies,
            max_age=int(accounts.SESSION_TTL.total_seconds()),
            path="/",
        )
        redirect.delete_cookie(LOGIN_CSRF_COOKIE)
        return redirect

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, _user: Annotated[User, Depends(require("search"))]) -> RedirectResponse:
        accounts.end_session(st.engine, request.cookies.get(SESSION_COOKIE, ""))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # ---- search ----

    def _search(p: SearchParams, *, facets: bool, histogram: bool, stories: bool) -> SearchOut:
        """Hits (or stories), facets and the volume chart of one request, from the result cache when
        the same page was computed on the current index (staff page through the same queries)."""
        if p.limit > CACHE_MAX_HITS:  # deep story pages and big API pages: computed, never kept
            return _search_uncached(p, facets=facets, histogram=histogram, stories=stories)
        today = datetime.now(settings.tz).date()  # the chart's default span ends today
        key = (p, facets, histogram, stories, today)
        out: SearchOut = st.results.get_or_compute(
            key, lambda: _search_uncached(p, facets=facets, histogram=histogram, stories=stories)
        )
        return out.model_copy()  # callers may trim .hits; the cached value stays whole

    def _search_uncached(p: SearchParams, *, facets: bool, histogram: bool, stories: bool) -> SearchOut:
        backend = st.backend
        filters = p.filters(settings)
        if stories:
            story_hits = backend.search_stories(p.q, filters, sort=p.sort, limit=p.limit)
            total = backend.count(p.q, filters)
            hits = [_hit_out(s.hit, s.documents, s.outlets) for s in story_hits]
        else:
            result = backend.search(p.q, filters, sort=p.sort, limit=p.limit, offset=p.offset)
            total, hits = result.total, [_hit_out(h) for h in result.hits]
        out = SearchOut(total=total, hits=hits)
        if facets:
            raw = backend.facets(FACET_FIELDS, p.q, filters, size=10)
            out.facets = {k: [FacetBucket(value=v, count=c) for v, c in b] for k, b in raw.items()}
        if histogram and total:
            # The chart spans the asked dates, else the last 30 days; long spans use coarser buckets.
            end = filters.date_to or datetime.now(settings.tz)
            start = filters.date_from or min(_days_ago(settings, 30), end - timedelta(days=30))
            span = end - start
            interval: HistogramInterval = (
                "day"
                if span <= timedelta(days=120)
                else "week"
                if span <= timedelta(days=3 * 366)
                else "month"
            )
            out.histogram = backend.date_histogram(
                interval, p.q, replace(filters, date_from=start, date_to=end)
            )
        return out

    async def search_params(
        q: Annotated[str, Query(max_length=10_000, description="Staff query language")] = "",
        topic: str | None = None,
        sentiment: str | None = None,
        source: str | None = None,
        source_type: str | None = None,
        date_from: Annotated[str | None, Query(alias="from", description="First day, YYYY-MM-DD")] = None,
        date_to: Annotated[str | None, Query(alias="to", description="Last day, inclusive")] = None,
        sort: Annotated[
            Literal["relevance", "date", ""],
            Query(description="Empty: relevance with a query, else newest first"),
        ] = "",
        limit: Annotated[int, Query(ge=1, le=200)] = 20,
        offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
    ) -> SearchParams:
        first, last = _parse_day(date_from), _parse_day(date_to)
        order: Literal["relevance", "date"] = sort or ("relevance" if q.strip() else "date")
        return SearchParams(q, topic, sentiment, source, source_type, first, last, order, limit, offset)

    @app.get(
        "/api/v1/search",
        response_model=SearchOut,
        response_model_exclude_none=True,
        response_class=JSONResponse,
        tags=["search"],
    )
    async def api_search(
        _user: Annotated[User, Depends(require("search"))],
        params: Annotated[SearchParams, Depends(search_params)],
        facets: bool = False,
        histogram: bool = False,
        collapse: Annotated[bool, Query(description="One hit per story cluster")] = False,
    ) -> Response:
        """Search documents with the staff query language (see `duluan search --explain`); `facets` adds
        topic/sentiment/source/source_type/entity counts, `collapse` returns one hit per story."""

        def body() -> bytes:
            out = _search(params, facets=facets, histogram=histogram, stories=collapse)
            # Serialised once by pydantic-core (the model is valid already: no second validation).
            return out.model_dump_json(exclude_none=True).encode()

        # A page computed on the current index is answered from the event loop; only a miss goes to a
        # worker thread (the index work blocks).
        if params.limit > CACHE_MAX_HITS:
            return Response(await run_in_threadpool(body), media_type="application/json")
        key = ("api", params, facets, histogram, collapse, datetime.now(settings.tz).date())
        cached = st.results.peek(key)
        if cached is None:
            cached = await run_in_threadpool(st.results.get_or_compute, key, body)
        return Response(cached, media_type="application/json")

    @app.get("/api/v1/stories", response_model=SearchOut, response_model_exclude_none=True, tags=["search"])
    def api_stories(
        _user: Annotated[User, Depends(require("search"))],
        params: Annotated[SearchParams, Depends(search_params)],
    ) -> SearchOut:
        """Story clusters (cụm tin): one row per story with how many documents and outlets ran it."""
        return _search(params, facets=False, histogram=False, stories=True)

    @app.get("/api/v1/export.csv", tags=["search"])
    def api_export(
        user: Annotated[User, Depends(require("search"))],
        params: Annotated[SearchParams, Depends(search_params)],
    ) -> StreamingResponse:
        """Every matching document as CSV (at most 50 000 rows); cells never start a formula."""
        backend = st.backend
        filters = params.filters(settings)
        backend.count(params.q, filters)  # raises QueryError before the stream starts
        st.audit(user, "export", "search", params.q[:300])

        def rows() -> Iterator[str]:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(["id", "published_at", "source", "title", "url", "topic", "sentiment"])
            for n, d in enumerate(backend.scan(params.q, filters)):
                if n >= EXPORT_MAX_ROWS:
                    break
                when = d.published_at.isoformat() if d.published_at else ""
                writer.writerow(
                    [csv_safe(v) for v in (d.id, when, d.source, d.title, d.url, d.topic, d.sentiment)]
                )
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
            yield buffer.getvalue()

        return StreamingResponse(
            rows(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="duluan-export.csv"'},
        )

    # ---- exports as background jobs ----

    def _export_job(user: User, job_id: str) -> ExportJob:
        """The job if it exists and `user` owns it (admins see every job); 404 otherwise."""
        try:
            job = st.exports.get(job_id)
        except ExportJobError as exc:
            raise HTTPException(404, str(exc)) from None
        if job.owner != user.username and not user.can("users"):  # "users": admins
            raise HTTPException(404, f"no export {job_id!r} of yours")
        return job

    def _start_export(user: User, body: ExportIn) -> ExportJob:
        params = SearchParams(
            body.q, body.topic, body.sentiment, body.source, body.source_type, body.date_from, body.date_to
        )
        job = st.exports.start(st.backend, user.username, body.q, params.filters(settings), body.format)
        st.audit(user, "export", "search", job.id, query=body.q[:300], format=body.format, total=job.total)
        return job

    @app.post("/api/v1/exports", tags=["exports"], status_code=202)
    def api_start_export(body: ExportIn, user: Annotated[User, Depends(require("search"))]) -> dict[str, Any]:
        """Start exporting every match (CSV or XLSX, at most 200 000 rows) in the background; poll
        `status_url`, then fetch `download_url`. A bad query is refused here with 400."""
        return _start_export(user, body).to_json()

    @app.get("/api/v1/exports", tags=["exports"])
    def api_exports(user: Annotated[User, Depends(require("search"))]) -> list[dict[str, Any]]:
        """Your exports, newest first (kept 7 days)."""
        return [j.to_json() for j in st.exports.list(user.username)]

    @app.get("/api/v1/exports/{job_id}", tags=["exports"])
    def api_export_status(job_id: str, user: Annotated[User, Depends(require("search"))]) -> dict[str, Any]:
        """Progress of an export: state (queued, running, done, failed), rows written, total, percent."""
        return _export_job(user, job_id).to_json()

    @app.get("/api/v1/exports/{job_id}/download", tags=["exports"], response_class=FileResponse)
    def api_export_download(job_id: str, user: Annotated[User, Depends(require("search"))]) -> FileResponse:
        """The finished file, streamed (only its owner or an admin)."""
        job = _export_job(user, job_id)
        try:
            path = st.exports.file(job)
        except ExportJobError as exc:
            raise HTTPException(409, str(exc)) from None
        return FileResponse(path, media_type=MEDIA_TYPES[job.format], filename=job.filename)

    @app.delete("/api/v1/exports/{job_id}", tags=["exports"], status_code=204)
    def api_export_delete(job_id: str, user: Annotated[User, Depends(require("search"))]) -> Response:
        """Cancel a running export, or delete a finished one."""
        _export_job(user, job_id)
        st.exports.cancel(job_id)
        return Response(status_code=204)

    @app.post("/exports", include_in_schema=False)
    async def export_form(
        request: Request, user: Annotated[User, Depends(require("search"))]
    ) -> RedirectResponse:
        form = {k: str(v) for k, v in (await request.form()).items() if str(v)}
        try:
            body = ExportIn.model_validate(form)
        except ValidationError as exc:
            raise HTTPException(422, "; ".join(e["msg"] for e in exc.errors())) from None
        try:
            job = _start_export(user, body)
        except QueryError as exc:
            raise HTTPException(400, f"{exc.message_vi} / {exc}") from None
        return RedirectResponse(f"/exports/{job.id}", status_code=303)

    @app.post("/exports/{job_id}/delete", include_in_schema=False)
    def export_delete_form(
        job_id: str, user: Annotated[User, Depends(require("search"))]
    ) -> RedirectResponse:
        _export_job(user, job_id)
        st.exports.cancel(job_id)
        return RedirectResponse("/exports", status_code=303)

    @app.get("/exports", response_class=HTMLResponse, include_in_schema=False)
    def exports_page(request: Request, user: Annotated[User, Depends(require("search"))]) -> HTMLResponse:
        return page(request, "exports.html", jobs=st.exports.list(user.username), job=None)

    @app.get("/exports/{job_id}", response_class=HTMLResponse, include_in_schema=False)
    def export_page(
        request: Request, job_id: str, user: Annotated[User, Depends(require("search"))]
    ) -> HTMLResponse:
        job = _export_job(user, job_id)
        return page(request, "exports.html", jobs=[job], job=job)

    # ---- saved searches ----

    def _saved_json(saved: Any) -> dict[str, Any]:
        return {
            "id": saved.id,
            "owner": saved.owner,
            "name": saved.name,
            "query": saved.query,
            "filters": json.loads(filters_to_json(saved.filters)),
            "created_at": saved.created_at.isoformat(),
            "updated_at": saved.updated_at.isoformat(),
        }

    @app.get("/api/v1/saved-searches", tags=["search"])
    def api_saved_searches(user: Annotated[User, Depends(require("search"))]) -> list[dict[str, Any]]:
        """Your saved searches (tìm kiếm đã lưu)."""
        with st.engine.connect() as conn:
            return [_saved_json(s) for s in list_searches(conn, user.username)]

    @app.put("/api/v1/saved-searches/{name}", tags=["search"])
    def api_save_search(
        name: str, body: SavedSearchIn, user: Annotated[User, Depends(require("search"))]
    ) -> dict[str, Any]:
        """Create or replace your saved search `name` (the query must parse, filters must be known)."""
        try:
            with st.engine.begin() as conn:
                saved = save_search(conn, user.username, name, body.query, filters_from_json(body.filters))
        except SavedSearchError as exc:
            raise HTTPException(422, str(exc)) from None
        return _saved_json(saved)

    @app.delete("/api/v1/saved-searches/{name}", tags=["search"], status_code=204)
    def api_delete_saved_search(name: str, user: Annotated[User, Depends(require("search"))]) -> Response:
        with st.engine.begin() as conn:
            if not delete_search(conn, user.username, name):
                raise HTTPException(404, f"You have no saved search named {name!r}.")
        return Response(status_code=204)

    @app.get("/api/v1/stories/{cluster_id}", tags=["search"])
    def api_story(
        cluster_id: str,
        _user: Annotated[User, Depends(require("search"))],
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> SearchOut:
        """Every document of one story cluster, newest first."""
        if not re.fullmatch(r"[\w.:-]{1,128}", cluster_id):
            raise HTTPException(422, "a cluster id has letters, digits, '.', ':', '_' or '-' only")
        result = st.backend.search(f'cluster_id:"{cluster_id}"', None, sort="date", limit=limit)
        if not result.total:
            raise HTTPException(404, f"No story cluster {cluster_id!r}.")
        return SearchOut(total=result.total, hits=[_hit_out(h) for h in result.hits])

    # ---- documents and labels ----

    def _document(doc_id: str) -> Document:
        doc = st.backend.get(doc_id)
        if doc is None:
            raise HTTPException(404, f"No document with id {doc_id!r}; search first to find ids.")
        return doc

    def _correct(user: User, doc: Document, field: str, value: str) -> dict[str, Any]:
        """Store a correction as a label, show it in the index at once, and audit it."""
        if field == "topic" and value not in TOPICS:
            raise HTTPException(422, f"unknown topic {value!r}; use one of {', '.join(TOPICS)}")
        if field == "sentiment" and value not in SENTIMENTS:
            raise HTTPException(422, f"unknown sentiment {value!r}; use one of {', '.join(SENTIMENTS)}")
        if field == "relevance" and value not in ("relevant", "irrelevant"):
            raise HTTPException(422, "relevance is 'relevant' or 'irrelevant'")
        previous = getattr(doc, field) if field in ("topic", "sentiment") else None
        label_id = accounts.add_label(st.engine, doc.id, field, value, previous, user.username)
        st.audit(user, "label", "document", doc.id, field=field, value=value, previous=previous)
        index_updated = False
        if field in ("topic", "sentiment") and previous != value:
            try:
                st.backend.upsert([doc.model_copy(update={field: value})])
                index_updated = True
                st.results.clear()  # a remote index has no commit stamp to watch: forget cached pages
            except Exception as exc:  # e.g. a crawl holds the index writer: the label is kept anyway
                st.audit(user, "label_index_failed", "document", doc.id, error=type(exc).__name__)
        return {
            "label_id": label_id,
            "field": field,
            "value": value,
            "previous": previous,
            "index_updated": index_updated,
        }

    @app.get("/api/v1/documents/{doc_id}", response_model=Document, tags=["documents"])
    def api_document(doc_id: str, _user: Annotated[User, Depends(require("search"))]) -> Document:
        return _document(doc_id)

    @app.get("/api/v1/documents/{doc_id}/labels", tags=["documents"])
    def api_document_labels(
        doc_id: str, _user: Annotated[User, Depends(require("search"))]
    ) -> list[dict[str, Any]]:
        return accounts.list_labels(st.engine, doc_id)

    @app.post("/api/v1/documents/{doc_id}/labels", tags=["documents"], status_code=201)
    def api_label_document(
        doc_id: str, body: LabelIn, user: Annotated[User, Depends(require("label"))]
    ) -> dict[str, Any]:
        """Correct a document's topic or sentiment, or mark it relevant/irrelevant (nhãn hiệu chỉnh)."""
        return _correct(user, _document(doc_id), body.field, body.value)

    def _queue(task: str, limit: int, days: int = 7) -> list[tuple[Document, float]]:
        labelled = {
            row["doc_id"] for row in accounts.list_labels(st.engine, limit=10_000) if row["field"] == task
        }
        recent = SearchFilters(date_from=datetime.now(UTC) - timedelta(days=days))
        return least_certain(islice(st.backend.scan("", recent), QUEUE_SCAN_MAX), task, limit, labelled)

    @app.get("/api/v1/labels/queue", tags=["documents"])
    def api_label_queue(
        _user: Annotated[User, Depends(require("label"))],
        task: Literal["topic", "sentiment"] = "sentiment",
        limit: Annotated[int, Query(ge=1, le=200)] = 20,
    ) -> list[dict[str, Any]]:
        """Recent documents the model was least sure about and nobody has labelled yet."""
        return [
            {"id": d.id, "title": d.title, "predicted": getattr(d, task), "confidence": round(c, 4)}
            for d, c in _queue(task, limit)
        ]

    @app.get("/api/v1/models", tags=["models"])
    def api_models(_user: Annotated[User, Depends(require("models"))]) -> list[dict[str, Any]]:
        """The NLP model in use per task with its evaluation (accuracy, macro-F1, confusion matrix)."""
        return model_summaries(settings.models_dir)

    @app.get("/api/v1/models/versions", tags=["models"])
    def api_model_versions(
        _user: Annotated[User, Depends(require("models"))],
        task: Literal["topic", "sentiment", "toxicity"] | None = None,
    ) -> list[dict[str, Any]]:
        """Registered model versions (newest first) with their metrics, data hash, who/when and status."""
        from nlp.registry import list_versions

        return [v.to_json() for v in list_versions(st.engine, task)]

    @app.post("/api/v1/models/versions/{version_id}/promote", tags=["models"])
    def api_model_promote(
        version_id: str, user: Annotated[User, Depends(require("models"))]
    ) -> dict[str, Any]:
        """Put a registered version in service for its task (atomic switch; the previous one stays
        available for `rollback`). Crawls started afterwards use it."""
        return _promote(user, version_id).to_json()

    @app.post("/api/v1/models/{task}/rollback", tags=["models"])
    def api_model_rollback(
        task: Literal["topic", "sentiment", "toxicity"], user: Annotated[User, Depends(require("models"))]
    ) -> dict[str, Any]:
        """Put back the version that was in service before the current one."""
        from nlp.registry import RegistryError, rollback

        try:
            version = rollback(st.engine, settings.models_dir, task, user.username)
        except RegistryError as exc:
            raise HTTPException(409, str(exc)) from None
        st.audit(user, "rollback", "model", version.id, task=task)
        return version.to_json()

    def _promote(user: User, version_id: str) -> Any:
        from nlp.registry import RegistryError, UnknownVersionError, promote

        try:
            version = promote(st.engine, settings.models_dir, version_id, user.username)
        except UnknownVersionError as exc:
            raise HTTPException(404, str(exc)) from None
        except RegistryError as exc:
            raise HTTPException(409, str(exc)) from None
        st.audit(user, "promote", "model", version.id, task=version.task)
        return version

    @app.post("/models/versions/{version_id}/promote", include_in_schema=False)
    def model_promote_form(
        version_id: str, user: Annotated[User, Depends(require("models"))]
    ) -> RedirectResponse:
        version = _promote(user, version_id)
        return RedirectResponse(
            f"/models?promoted={_quote(version.id)}#model-{version.task}", status_code=303
        )

    @app.get("/api/v1/labels", tags=["documents"])
    def api_labels(
        _user: Annotated[User, Depends(require("label"))],
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> list[dict[str, Any]]:
        """Analyst corrections, newest first (NLP training reads the newest per document and field)."""
        return accounts.list_labels(st.engine, limit=limit)

    # ---- sources ----

    @app.get("/api/v1/sources", tags=["sources"])
    def api_sources(_user: Annotated[User, Depends(require("sources_view"))]) -> list[dict[str, Any]]:
        health = {h.source_id: h.to_json() for h in source_health(st.engine)}
        return [
            {**s.model_dump(mode="json"), "health": health.get(s.id)}
            for s in list_sources(st.engine, enabled_only=False)
        ]

    @app.get("/api/v1/sources/{source_id}", tags=["sources"])
    def api_source(
        source_id: str, _user: Annotated[User, Depends(require("sources_view"))]
    ) -> dict[str, Any]:
        spec = get_source(st.engine, source_id)
        if spec is None:
            raise HTTPException(404, f"No source {source_id!r}; GET /api/v1/sources lists them.")
        return spec.model_dump(mode="json")

    @app.put("/api/v1/sources/{source_id}", tags=["sources"])
    def api_put_source(
        source_id: str, body: dict[str, Any], user: Annotated[User, Depends(require("sources_edit"))]
    ) -> dict[str, Any]:
        """Create or replace a source (the id in the path wins)."""
        spec = _validated_source({**body, "id": source_id})
        existed = get_source(st.engine, source_id) is not None
        upsert_sources(st.engine, [spec])
        st.audit(
            user, "update" if existed else "create", "source", spec.id, spec=spec.model_dump(mode="json")
        )
        return spec.model_dump(mode="json")

    @app.post("/api/v1/sources/{source_id}/enabled", tags=["sources"])
    def api_enable_source(
        source_id: str, enabled: bool, user: Annotated[User, Depends(require("sources_edit"))]
    ) -> dict[str, Any]:
        if not set_enabled(st.engine, source_id, enabled):
            raise HTTPException(404, f"No source {source_id!r}")
        st.audit(user, "enable" if enabled else "disable", "source", source_id)
        return {"id": source_id, "enabled": enabled}

    @app.delete("/api/v1/sources/{source_id}", tags=["sources"], status_code=204)
    def api_delete_source(
        source_id: str, user: Annotated[User, Depends(require("sources_edit"))]
    ) -> Response:
        """Remove a source from the registry (its crawled documents stay in the index; to pause a
        source instead, POST .../enabled?enabled=false)."""
        with st.engine.begin() as conn:
            gone = conn.execute(sources_table.delete().where(sources_table.c.id == source_id)).rowcount
        if not gone:
            raise HTTPException(404, f"No source {source_id!r}")
        st.audit(user, "delete", "source", source_id)
        return Response(status_code=204)

    @app.get("/api/v1/sources/{source_id}/health", tags=["sources"])
    def api_source_health(
        source_id: str, _user: Annotated[User, Depends(require("sources_view"))]
    ) -> dict[str, Any]:
        """Crawl health of one source (last run, error streak, status)."""
        for h in source_health(st.engine):
            if h.source_id == source_id:
                return h.to_json()
        raise HTTPException(404, f"No source {source_id!r}")

    # ---- alert rules ----

    def _visible_rules(user: User) -> list[StoredRule]:
        rules = load_rules(st.engine)
        return rules if user.can("rules_all") else [r for r in rules if r.spec.owner == user.username]

    def _own_rule(user: User, name: str) -> StoredRule:
        rule = get_rule(st.engine, name)
        if rule is None or not (user.can("rules_all") or rule.spec.owner == user.username):
            raise HTTPException(404, f"No alert rule named {name!r} that you may edit.")
        return rule

    def _rule_json(rule: StoredRule) -> dict[str, Any]:
        return {
            "id": rule.id,
            **rule.spec.model_dump(mode="json"),
            "created_at": rule.created_at.isoformat(),
            "updated_at": rule.updated_at.isoformat(),
        }

    def _spec_for(user: User, raw: dict[str, Any]) -> RuleSpec:
        if not user.can("rules_all") or not raw.get("owner"):
            raw = {**raw, "owner": user.username}  # staff own what they write
        try:
            return validate_rule(raw)
        except RuleValidationError as exc:
            raise HTTPException(422, str(exc)) from None

    def _save(user: User, spec: RuleSpec, replacing: str | None) -> int:
        existing = get_rule(st.engine, spec.name)
        if existing is not None and existing.spec.name != replacing:
            raise HTTPException(
                409, f"Đã có luật tên {spec.name!r} / a rule named {spec.name!r} exists; choose another name."
            )
        rule_id = save_rule(st.engine, spec)
        if replacing and replacing != spec.name:
            delete_rule(st.engine, replacing)
        st.audit(
            user,
            "update" if replacing else "create",
            "alert_rule",
            spec.name,
            spec=spec.model_dump(mode="json"),
        )
        return rule_id

    @app.get("/api/v1/rules", tags=["alerts"])
    def api_rules(user: Annotated[User, Depends(require("rules"))]) -> list[dict[str, Any]]:
        return [_rule_json(r) for r in _visible_rules(user)]

    @app.get("/api/v1/rule-types", tags=["alerts"])
    def api_rule_types(_user: Annotated[User, Depends(require("rules"))]) -> dict[str, Any]:
        return {
            name: {"description_vi": cls.description_vi, "params": cls.params_model.model_json_schema()}
            for name, cls in RULE_TYPES.items()
        }

    @app.post("/api/v1/rules", tags=["alerts"], status_code=201)
    def api_create_rule(
        body: dict[str, Any], user: Annotated[User, Depends(require("rules"))]
    ) -> dict[str, Any]:
        spec = _spec_for(user, body)
        _save(user, spec, None)
        stored = get_rule(st.engine, spec.name)
        assert stored is not None
        return _rule_json(stored)

    @app.get("/api/v1/rules/{name}", tags=["alerts"])
    def api_rule(name: str, user: Annotated[User, Depends(require("rules"))]) -> dict[str, Any]:
        return _rule_json(_own_rule(user, name))

    @app.put("/api/v1/rules/{name}", tags=["alerts"])
    def api_update_rule(
        name: str, body: dict[str, Any], user: Annotated[User, Depends(require("rules"))]
    ) -> dict[str, Any]:
        _own_rule(user, name)
        spec = _spec_for(user, body)
        _save(user, spec, name)
        stored = get_rule(st.engine, spec.name)
        assert stored is not None
        return _rule_json(stored)

    @app.delete("/api/v1/rules/{name}", tags=["alerts"], status_code=204)
    def api_delete_rule(name: str, user: Annotated[User, Depends(require("rules"))]) -> Response:
        _own_rule(user, name)
        delete_rule(st.engine, name)
        st.audit(user, "delete", "alert_rule", name)
        return Response(status_code=204)

    @app.post("/api/v1/rules/dry-run", tags=["alerts"])
    def api_dry_run(
        body: dict[str, Any],
        user: Annotated[User, Depends(require("rules"))],
        days: Annotated[int, Query(ge=1, le=14)] = 7,
    ) -> dict[str, Any]:
        """What the rule would have fired over the last `days` (nothing is saved or sent)."""
        spec = _spec_for(user, body)
        return dry_run_rule(st.backend, spec, datetime.now(UTC), days=days).to_json()

    @app.post("/api/v1/rules/{name}/dry-run", tags=["alerts"])
    def api_dry_run_saved(
        name: str,
        user: Annotated[User, Depends(require("rules"))],
        days: Annotated[int, Query(ge=1, le=14)] = 7,
    ) -> dict[str, Any]:
        """Test-run a saved rule against the last `days` of data (nothing is saved or sent)."""
        return dry_run_rule(st.backend, _own_rule(user, name).spec, datetime.now(UTC), days=days).to_json()

    def _alert_history(
        user: User, limit: int, rule: str | None = None, alert_id: str | None = None
    ) -> list[dict[str, Any]]:
        visible = {r.id for r in _visible_rules(user)}
        status = sa.select(
            alert_deliveries.c.alert_id, alert_deliveries.c.status, sa.func.count().label("n")
        ).group_by(alert_deliveries.c.alert_id, alert_deliveries.c.status)
        query = sa.select(alerts).order_by(alerts.c.created_at.desc()).limit(limit)
        query = query.where(alerts.c.rule_id.in_(visible))
        if rule:
            query = query.where(alerts.c.rule_name == rule)
        if alert_id:
            query = query.where(alerts.c.id == alert_id)
        with st.engine.connect() as conn:
            rows = [r for r in conn.execute(query) if r.rule_id in visible]
            deliveries: dict[str, dict[str, int]] = {}
            ids = [r.id for r in rows]
            if ids:
                for d in conn.execute(status.where(alert_deliveries.c.alert_id.in_(ids))):
                    deliveries.setdefault(d.alert_id, {})[d.status] = int(d.n)
        return [
            {
                "id": r.id,
                "rule": r.rule_name,
                "key": r.key,
                "title": r.title,
                "created_at": r.created_at.isoformat(),
                "body": r.body,
                "deliveries": deliveries.get(r.id, {}),
            }
            for r in rows
        ]

    @app.get("/api/v1/alerts", tags=["alerts"])
    def api_alerts(
        user: Annotated[User, Depends(require("rules"))],
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        rule: str | None = None,
    ) -> list[dict[str, Any]]:
        """Alert history (lịch sử cảnh báo) with delivery status counts per alert."""
        return _alert_history(user, limit, rule)

    def _outbox(user: User, status: str | None, limit: int) -> list[dict[str, Any]]:
        visible = {r.id for r in _visible_rules(user)}
        d = alert_deliveries
        query = (
            sa.select(d, alerts.c.rule_name, alerts.c.title)
            .join(alerts, alerts.c.id == d.c.alert_id)
            .where(alerts.c.rule_id.in_(visible))
            .order_by(d.c.created_at.desc(), d.c.id.desc())
            .limit(limit)
        )
        if status:
            query = query.where(d.c.status == status)
        with st.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            {
                "id": r.id,
                "alert_id": r.alert_id,
                "rule": r.rule_name,
                "title": r.title,
                "channel": r.channel,
                "recipient": r.recipient,
                "status": r.status,
                "attempts": r.attempts,
                "last_error": r.last_error,
                "next_attempt_at": r.next_attempt_at.isoformat() if r.next_attempt_at else None,
                "sent_at": r.sent_at.isoformat() if r.sent_at else None,
                "created_at": r.created_at.isoformat(),
            }
            for r in rows
        ]

    @app.get("/api/v1/outbox", tags=["alerts"])
    def api_outbox(
        user: Annotated[User, Depends(require("rules"))],
        status: Annotated[
            str | None, Query(description="pending, sending, sent, failed, bounced or interrupted")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> list[dict[str, Any]]:
        """The alert outbox (hàng đợi gửi): one row per alert, channel and recipient, newest first, with
        attempts and the last error; only alerts of rules you may see."""
        return _outbox(user, status, limit)

    @app.get("/api/v1/digests/deliveries", tags=["digests"])
    def api_digest_deliveries(
        _user: Annotated[User, Depends(require("digests_render"))],
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> list[dict[str, Any]]:
        """The digest e-mail outbox: who was (or will be) sent which day's digest, and how it went."""
        d = digest_deliveries
        with st.engine.connect() as conn:
            rows = conn.execute(sa.select(d).order_by(d.c.created_at.desc(), d.c.id.desc()).limit(limit))
            return [
                {
                    "day": r.day.isoformat(),
                    "group": r.recipient_group,
                    "recipient": r.recipient,
                    "status": r.status,
                    "attempts": r.attempts,
                    "last_error": r.last_error,
                    "sent_at": r.sent_at.isoformat() if r.sent_at else None,
                }
                for r in rows
            ]

    @app.get("/api/v1/alerts/{alert_id}", tags=["alerts"])
    def api_alert(alert_id: str, user: Annotated[User, Depends(require("rules"))]) -> dict[str, Any]:
        found = _alert_history(user, 1, alert_id=alert_id)
        if not found:
            raise HTTPException(404, f"No alert {alert_id!r} on a rule you may see.")
        return found[0]

    # ---- digests ----

    @app.get("/api/v1/digests/subscription", tags=["digests"])
    def api_subscription(user: Annotated[User, Depends(require("digests"))]) -> dict[str, Any]:
        """Whether you receive the daily digest by e-mail, and at which address."""
        found = subscriptions.get_subscription(st.engine, user.username)
        return {"subscribed": found is not None, **(found or {})}

    @app.put("/api/v1/digests/subscription", tags=["digests"])
    def api_subscribe(
        body: SubscriptionIn, user: Annotated[User, Depends(require("digests"))]
    ) -> dict[str, Any]:
        """Receive the daily digest (HTML + PDF) at `email` from the next morning on."""
        try:
            found = subscriptions.subscribe(st.engine, user.username, body.email)
        except subscriptions.SubscriptionError as exc:
            raise HTTPException(422, str(exc)) from None
        st.audit(user, "subscribe", "digest", user.username, email=found["email"])
        return {"subscribed": True, **found}

    @app.delete("/api/v1/digests/subscription", tags=["digests"], status_code=204)
    def api_unsubscribe(user: Annotated[User, Depends(require("digests"))]) -> Response:
        if subscriptions.unsubscribe(st.engine, user.username):
            st.audit(user, "unsubscribe", "digest", user.username)
        return Response(status_code=204)

    @app.get("/api/v1/digests/{day}", tags=["digests"])
    def api_digest(day: date, _user: Annotated[User, Depends(require("digests"))]) -> dict[str, Any]:
        """One archived digest: links to its HTML and PDF."""
        if digest_path(settings.digests_dir, day) is None:
            raise HTTPException(404, f"No digest for {day}; POST /api/v1/digests renders one.")
        return _digest_json(day)

    def _digest_json(day: date) -> dict[str, Any]:
        html = digest_path(settings.digests_dir, day)
        pdf = digest_pdf_path(settings.digests_dir, day)
        return {
            "day": day.isoformat(),
            "url": f"/digests/{day.isoformat()}/raw",
            "bytes": html.stat().st_size if html else 0,
            "pdf_url": f"/digests/{day.isoformat()}/pdf" if pdf else None,
        }

    @app.get("/api/v1/digests", tags=["digests"])
    def api_digests(_user: Annotated[User, Depends(require("digests"))]) -> list[dict[str, Any]]:
        """The digest archive, newest first, with HTML and PDF links."""
        return [_digest_json(day) for day, _path in list_digests(settings.digests_dir)]

    @app.post("/api/v1/digests", tags=["digests"], status_code=201)
    def api_render_digest(
        body: DigestRenderIn, user: Annotated[User, Depends(require("digests_render"))]
    ) -> dict[str, Any]:
        """Render (or re-render) a day's digest into the archive now."""
        from duluan.operations import render_digest

        path = render_digest(settings, body.day, None)
        day = date.fromisoformat(path.stem.removeprefix("ban-tin-"))
        st.audit(user, "render", "digest", day.isoformat())
        return _digest_json(day)

    # ---- users, tokens, audit ----

    @app.get("/api/v1/me", tags=["users"])
    def api_me(user: Annotated[User, Depends(require("search"))]) -> dict[str, Any]:
        return {**user.to_json(), "capabilities": sorted(c for c in accounts.PERMISSIONS if user.can(c))}

    @app.post("/api/v1/me/tokens", tags=["users"], status_code=201)
    def api_new_token(body: TokenIn, user: Annotated[User, Depends(require("search"))]) -> dict[str, str]:
        """A bearer token for your scripts; shown once."""
        token = accounts.create_api_token(st.engine, user.username, body.name)
        st.audit(user, "create", "api_token", body.name)
        return {"token": token}

    @app.get("/api/v1/users", tags=["users"])
    def api_users(_user: Annotated[User, Depends(require("users"))]) -> list[dict[str, Any]]:
        return [u.to_json() for u in accounts.list_users(st.engine)]

    @app.post("/api/v1/users", tags=["users"], status_code=201)
    def api_create_user(body: UserIn, user: Annotated[User, Depends(require("users"))]) -> dict[str, Any]:
        try:
            created = accounts.create_user(
                st.engine, body.username, body.password, body.role, body.display_name
            )
        except accounts.AccountError as exc:
            raise HTTPException(422, str(exc)) from None
        st.audit(user, "create", "user", created.username, role=created.role)
        return created.to_json()

    @app.get("/api/v1/users/{username}", tags=["users"])
    def api_user(username: str, _user: Annotated[User, Depends(require("users"))]) -> dict[str, Any]:
        found = accounts.get_user(st.engine, username)
        if found is None:
            raise HTTPException(404, f"No user {username!r}")
        return found.to_json()

    @app.patch("/api/v1/users/{username}", tags=["users"])
    def api_update_user(
        username: str, body: UserPatch, user: Annotated[User, Depends(require("users"))]
    ) -> dict[str, Any]:
        """Change a user's role, (de)activate them (ends their sessions), or set a new password."""
        if username == user.username and (body.active is False or body.role not in (None, user.role)):
            raise HTTPException(409, "You cannot demote or deactivate yourself; ask another admin.")
        try:
            if body.password is not None:
                accounts.set_password(st.engine, username, body.password)
            updated = accounts.update_user(st.engine, username, role=body.role, active=body.active)
        except accounts.AccountError as exc:
            status = 404 if str(exc).startswith("no user") else 422
            raise HTTPException(status, str(exc)) from None
        changes = body.model_dump(exclude_none=True, exclude={"password"})
        st.audit(user, "update", "user", username, **changes, password_changed=body.password is not None)
        return updated.to_json()

    @app.get("/api/v1/audit", tags=["users"])
    def api_audit(
        _user: Annotated[User, Depends(require("audit"))],
        limit: Annotated[int, Query(ge=1, le=5000)] = 200,
        object_type: str | None = None,
    ) -> list[dict[str, Any]]:
        return accounts.list_audit(st.engine, limit, object_type)

    # ============================== UI pages ==============================

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def search_page(
        request: Request,
        _user: Annotated[User, Depends(require("search"))],
        params: Annotated[SearchParams, Depends(search_params)],
        view: Literal["stories", "list"] = "stories",
        page_no: Annotated[int, Query(alias="page", ge=1, le=100)] = 1,
    ) -> HTMLResponse:
        error = None
        per_page = 20
        p = replace(params, limit=per_page, offset=(page_no - 1) * per_page)
        result = SearchOut(total=0, hits=[])
        chart = ""
        try:
            if view == "stories":
                p = replace(p, limit=per_page * page_no, offset=0)
            result = _search(p, facets=True, histogram=True, stories=view == "stories")
            if view == "stories":
                result.hits = result.hits[(page_no - 1) * per_page :]
            if result.histogram:
                translate = i18n.translator(i18n.language_of(request.cookies.get(i18n.LANG_COOKIE)))
                points = [(d.strftime("%d/%m"), n) for d, n in result.histogram]
                chart = svg_bar_chart(points, title=translate("Số bài theo ngày"))
        except QueryError as exc:
            where = f" (vị trí {exc.position})" if exc.position is not None else ""
            error = f"{exc.message_vi}{where} / {exc}"
        except ValueError as exc:
            error = str(exc)
        base = {k: v for k, v in request.query_params.items() if k != "page"}
        return page(
            request,
            "search.html",
            q=p.q,
            params=p,
            view=view,
            result=result,
            error=error,
            chart=chart,
            page_no=page_no,
            per_page=per_page,
            base_query=base,
            sort_choice=request.query_params.get("sort", ""),
            date_ranges=_date_ranges(datetime.now(settings.tz).date()),
            rule_types=RULE_TYPES,
        )

    @app.get("/documents/{doc_id}", response_class=HTMLResponse, include_in_schema=False)
    def document_page(
        request: Request, doc_id: str, _user: Annotated[User, Depends(require("search"))], saved: str = ""
    ) -> HTMLResponse:
        doc = _document(doc_id)
        return page(
            request,
            "document.html",
            doc=doc,
            labels=accounts.list_labels(st.engine, doc_id),
            saved=saved,
        )

    @app.post("/documents/{doc_id}/label", include_in_schema=False)
    def document_label(
        doc_id: str,
        user: Annotated[User, Depends(require("label"))],
        field: Annotated[str, Form()],
        value: Annotated[str, Form()],
        back: Annotated[str, Form()] = "",
    ) -> RedirectResponse:
        if field not in accounts.LABEL_FIELDS:
            raise HTTPException(422, f"cannot correct {field!r}")
        _correct(user, _document(doc_id), field, value)
        target = _safe_next(back) if back else f"/documents/{_quote(doc_id)}?saved={field}"
        return RedirectResponse(target, status_code=303)

    @app.get("/models", response_class=HTMLResponse, include_in_schema=False)
    def models_page(request: Request, _user: Annotated[User, Depends(require("models"))]) -> HTMLResponse:
        from nlp.registry import list_versions, reconcile_status

        versions: dict[str, list[Any]] = {}
        for version in list_versions(st.engine):
            versions.setdefault(version.task, []).append(version)
        warnings = [
            w for task in MODEL_TASKS if (w := reconcile_status(st.engine, settings.models_dir, task))
        ]
        return page(
            request,
            "models.html",
            models=model_summaries(settings.models_dir),
            versions=versions,
            registry_warnings=warnings,
            promoted=request.query_params.get("promoted"),
        )

    @app.get("/labels/queue", response_class=HTMLResponse, include_in_schema=False)
    def label_queue_page(
        request: Request,
        _user: Annotated[User, Depends(require("label"))],
        task: Literal["topic", "sentiment"] = "sentiment",
    ) -> HTMLResponse:
        return page(request, "label_queue.html", task=task, queue=_queue(task, 30))

    def _overview_index(today: date) -> dict[str, Any]:
        """The index side of the overview (counts, 14-day sentiment chart, top stories, negative news)."""
        backend = st.backend
        tz = settings.tz
        start_today = datetime.combine(today, time.min, tz)
        start_yesterday = start_today - timedelta(days=1)
        now = datetime.now(tz)
        counts = {
            "today": backend.count(
                "", SearchFilters(date_from=start_today, date_to=now + timedelta(minutes=1))
            ),
            "yesterday": backend.count("", SearchFilters(date_from=start_yesterday, date_to=start_today)),
            "today_negative": backend.count(
                "",
                SearchFilters(
                    sentiment="negative", date_from=start_today, date_to=now + timedelta(minutes=1)
                ),
            ),
            "yesterday_negative": backend.count(
                "", SearchFilters(sentiment="negative", date_from=start_yesterday, date_to=start_today)
            ),
        }
        trend_from = start_today - timedelta(days=13)
        trend_to = start_today + timedelta(days=1)
        per_day: dict[str, dict[str, int]] = {}
        for sentiment in SENTIMENTS:
            for day_start, n in backend.date_histogram(
                "day", "", SearchFilters(sentiment=sentiment, date_from=trend_from, date_to=trend_to)
            ):
                per_day.setdefault(day_start.astimezone(tz).strftime("%d/%m"), {})[sentiment] = n
        days = [(trend_from + timedelta(days=i)).strftime("%d/%m") for i in range(14)]
        trend_chart = svg_stacked_sentiment([(d, per_day.get(d, {})) for d in days])
        stories = backend.search_stories("", SearchFilters(date_from=start_yesterday), sort="date", limit=60)
        top_stories = sorted(stories, key=lambda s: (-s.outlets, -s.documents))[:10]
        negative = backend.search(
            "",
            SearchFilters(
                sentiment="negative", min_province_relevance=0.5, date_from=now - timedelta(days=2)
            ),
            sort="date",
            limit=10,
        ).hits
        return {
            "counts": counts,
            "trend_chart": trend_chart,
            "top_stories": top_stories,
            "negative": negative,
        }

    @app.get("/overview", response_class=HTMLResponse, include_in_schema=False)
    def overview_page(request: Request, _user: Annotated[User, Depends(require("overview"))]) -> HTMLResponse:
        # Leaders open this page often: its index part is kept until the next index commit (≤ 60 s).
        today = datetime.now(settings.tz).date()
        index_part = st.results.get_or_compute(("overview", today), lambda: _overview_index(today))
        health = source_health(st.engine)
        health_summary: dict[str, int] = {}
        for h in health:
            if h.enabled:
                health_summary[h.status] = health_summary.get(h.status, 0) + 1
        return page(
            request,
            "overview.html",
            **index_part,
            health_summary=health_summary,
            unhealthy=[h for h in health if h.enabled and h.status not in ("ok", "never_run")],
            province=settings.province.name,
        )

    # ---- alerts UI ----

    def _rule_form_defaults(user: User, rule: StoredRule | None) -> dict[str, Any]:
        if rule is None:
            return {
                "name": "",
                "description": "",
                "owner": user.username,
                "rule_type": "match",
                "query": "",
                "topic": "",
                "sentiment": "",
                "source": "",
                "source_type": "",
                "min_province_relevance": "",
                "params": "{}",
                "schedule": "",
                "channels": "[]",
                "suppression_minutes": 60,
                "enabled": True,
            }
        s = rule.spec
        return {
            "name": s.name,
            "description": s.description,
            "owner": s.owner,
            "rule_type": s.rule_type,
            "query": s.query,
            "topic": s.filters.topic or "",
            "sentiment": s.filters.sentiment or "",
            "source": s.filters.source or "",
            "source_type": s.filters.source_type.value if s.filters.source_type else "",
            "min_province_relevance": (
                "" if s.filters.min_province_relevance is None else s.filters.min_province_relevance
            ),
            "params": json.dumps(s.params, ensure_ascii=False),
            "schedule": s.schedule,
            "channels": json.dumps([c.model_dump(mode="json") for c in s.channels], ensure_ascii=False),
            "suppression_minutes": s.suppression_minutes,
            "enabled": s.enabled,
        }

    @app.get("/alerts", response_class=HTMLResponse, include_in_schema=False)
    def alerts_page(
        request: Request, user: Annotated[User, Depends(require("rules"))], rule: str = ""
    ) -> HTMLResponse:
        return page(
            request,
            "alerts.html",
            rules=_visible_rules(user),
            history=_alert_history(user, 100, rule or None),
            undelivered=[o for o in _outbox(user, None, 300) if o["status"] != "sent"][:50],
            rule_filter=rule,
            rule_types=RULE_TYPES,
        )

    @app.get("/alerts/{alert_id}", response_class=HTMLResponse, include_in_schema=False)
    def alert_page(
        request: Request, alert_id: str, user: Annotated[User, Depends(require("rules"))]
    ) -> HTMLResponse:
        """The page an alert message links to (alerts.messages.alert_link)."""
        found = _alert_history(user, 1, alert_id=alert_id)
        if not found:
            raise HTTPException(404, "Không tìm thấy cảnh báo này (có thể luật đã bị xóa).")
        return page(request, "alert.html", alert=found[0])

    @app.get("/alerts/rules/edit", response_class=HTMLResponse, include_in_schema=False)
    def rule_edit_page(
        request: Request, user: Annotated[User, Depends(require("rules"))], name: str = "", query: str = ""
    ) -> HTMLResponse:
        rule = _own_rule(user, name) if name else None
        form = _rule_form_defaults(user, rule)
        if rule is None and query:
            form["query"] = query
        return page(
            request,
            "rule_edit.html",
            form=form,
            original=name,
            rule_types=RULE_TYPES,
            errors=None,
            dry=None,
        )

    @app.post("/alerts/rules/edit", response_class=HTMLResponse, include_in_schema=False, response_model=None)
    async def rule_edit_submit(
        request: Request, user: Annotated[User, Depends(require("rules"))]
    ) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        action = form.get("action", "save")
        original = form.get("original", "")
        if original:
            _own_rule(user, original)
        raw, errors = _rule_from_form(form)
        dry = None
        if raw is not None:
            try:
                spec = _spec_for(user, raw)
                if action == "dryrun":
                    dry = dry_run_rule(st.backend, spec, datetime.now(UTC))
                elif action == "delete" and original:
                    delete_rule(st.engine, original)
                    st.audit(user, "delete", "alert_rule", original)
                    return RedirectResponse("/alerts?deleted=1", status_code=303)
                else:
                    _save(user, spec, original or None)
                    return RedirectResponse("/alerts?saved=1", status_code=303)
            except HTTPException as exc:
                errors = str(exc.detail)
            except (QueryError, ValueError) as exc:
                errors = str(exc)
        return page(
            request,
            "rule_edit.html",
            form={**_rule_form_defaults(user, None), **form, "enabled": form.get("enabled") == "on"},
            original=original,
            rule_types=RULE_TYPES,
            errors=errors,
            dry=dry,
        )

    # ---- digests UI ----

    @app.get("/digests", response_class=HTMLResponse, include_in_schema=False)
    def digests_page(request: Request, _user: Annotated[User, Depends(require("digests"))]) -> HTMLResponse:
        return page(
            request,
            "digests.html",
            digests=[
                (d, p, digest_pdf_path(settings.digests_dir, d))
                for d, p in list_digests(settings.digests_dir)
            ],
            today=datetime.now(settings.tz).date(),
            subscription=subscriptions.get_subscription(st.engine, _user.username),
        )

    @app.post("/digests/render", include_in_schema=False)
    def digests_render(
        user: Annotated[User, Depends(require("digests_render"))], day: Annotated[str, Form()] = ""
    ) -> RedirectResponse:
        from duluan.operations import render_digest

        path = render_digest(settings, _parse_day(day), None)
        rendered = path.stem.removeprefix("ban-tin-")
        st.audit(user, "render", "digest", rendered)
        return RedirectResponse(f"/digests/{rendered}", status_code=303)

    @app.post("/digests/subscription", include_in_schema=False)
    def digests_subscribe(
        user: Annotated[User, Depends(require("digests"))],
        email: Annotated[str, Form(max_length=320)] = "",
        action: Annotated[str, Form()] = "subscribe",
    ) -> RedirectResponse:
        if action == "unsubscribe":
            if subscriptions.unsubscribe(st.engine, user.username):
                st.audit(user, "unsubscribe", "digest", user.username)
            return RedirectResponse("/digests?subscription=off", status_code=303)
        try:
            found = subscriptions.subscribe(st.engine, user.username, email)
        except subscriptions.SubscriptionError as exc:
            raise HTTPException(422, str(exc)) from None
        st.audit(user, "subscribe", "digest", user.username, email=found["email"])
        return RedirectResponse("/digests?subscription=on", status_code=303)

    @app.get("/digests/{day}", response_class=HTMLResponse, include_in_schema=False)
    def digest_page(
        request: Request, day: date, _user: Annotated[User, Depends(require("digests"))]
    ) -> HTMLResponse:
        if digest_path(settings.digests_dir, day) is None:
            raise HTTPException(404, f"Chưa có bản tin ngày {day:%d/%m/%Y}.")
        return page(request, "digest.html", day=day, pdf=digest_pdf_path(settings.digests_dir, day))

    @app.get("/digests/{day}/pdf", include_in_schema=False)
    def digest_pdf(day: date, _user: Annotated[User, Depends(require("digests"))]) -> FileResponse:
        path = digest_pdf_path(settings.digests_dir, day)
        if path is None:
            raise HTTPException(404, f"Chưa có bản PDF của bản tin ngày {day:%d/%m/%Y}; hãy tạo lại bản tin.")
        return FileResponse(path, media_type="application/pdf", filename=path.name)

    @app.get("/digests/{day}/raw", include_in_schema=False)
    def digest_raw(day: date, _user: Annotated[User, Depends(require("digests"))]) -> HTMLResponse:
        path = digest_path(settings.digests_dir, day)
        if path is None:
            raise HTTPException(404, f"Chưa có bản tin ngày {day:%d/%m/%Y}.")
        # Links in the digest open in a new tab, never inside the sandboxed frame.
        html = path.read_text(encoding="utf-8").replace("<head>", '<head><base target="_blank">', 1)
        response = HTMLResponse(html)
        response.headers["Content-Security-Policy"] = DIGEST_CSP
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
        return response

    # ---- sources UI ----

    @app.get("/sources", response_class=HTMLResponse, include_in_schema=False)
    def sources_page(
        request: Request, _user: Annotated[User, Depends(require("sources_view"))]
    ) -> HTMLResponse:
        return page(request, "sources.html", health=source_health(st.engine))

    @app.get("/sources/edit", response_class=HTMLResponse, include_in_schema=False)
    def source_edit_page(
        request: Request, _user: Annotated[User, Depends(require("sources_edit"))], id: str = ""
    ) -> HTMLResponse:
        spec = get_source(st.engine, id) if id else None
        if id and spec is None:
            raise HTTPException(404, f"Không có nguồn {id!r}.")
        return page(
            request,
            "source_edit.html",
            spec=spec,
            form=_source_form(spec),
            kinds=list(SourceKind),
            errors=None,
        )

    @app.post("/sources/edit", response_class=HTMLResponse, include_in_schema=False, response_model=None)
    async def source_edit_submit(
        request: Request, user: Annotated[User, Depends(require("sources_edit"))]
    ) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        existing = get_source(st.engine, form.get("id", "").strip())
        raw: dict[str, Any] = existing.model_dump(mode="json") if existing else {}
        raw.update(
            id=form.get("id", "").strip(),
            name=form.get("name", "").strip(),
            type=form.get("type", "rss"),
            source_type=form.get("source_type", "news"),
            start_urls=[u.strip() for u in form.get("start_urls", "").splitlines() if u.strip()],
            schedule=form.get("schedule", "every 30m").strip(),
            enabled=form.get("enabled") == "on",
        )
        try:
            spec = _validated_source(raw)
        except HTTPException as exc:
            return page(
                request,
                "source_edit.html",
                spec=existing,
                form=form,
                kinds=list(SourceKind),
                errors=str(exc.detail),
            )
        upsert_sources(st.engine, [spec])
        st.audit(
            user, "update" if existing else "create", "source", spec.id, spec=spec.model_dump(mode="json")
        )
        return RedirectResponse("/sources?saved=1", status_code=303)

    @app.get("/admin/users", response_class=HTMLResponse, include_in_schema=False)
    def users_page(request: Request, _user: Annotated[User, Depends(require("users"))]) -> HTMLResponse:
        return page(
            request,
            "users.html",
            people=accounts.list_users(st.engine),
            audit=accounts.list_audit(st.engine, 100),
            errors=None,
        )

    @app.post("/admin/users", response_class=HTMLResponse, include_in_schema=False, response_model=None)
    def users_submit(
        request: Request,
        user: Annotated[User, Depends(require("users"))],
        username: Annotated[str, Form()],
        role: Annotated[str, Form()],
        password: Annotated[str, Form()] = "",
        display_name: Annotated[str, Form()] = "",
        action: Annotated[str, Form()] = "create",
    ) -> Response:
        try:
            if action == "create":
                accounts.create_user(st.engine, username, password, role, display_name)
            else:
                accounts.update_user(st.engine, username, role=role, active=action != "deactivate")
        except accounts.AccountError as exc:
            return page(
                request,
                "users.html",
                people=accounts.list_users(st.engine),
                audit=accounts.list_audit(st.engine, 100),
                errors=str(exc),
            )
        st.audit(user, action, "user", username, role=role)
        return RedirectResponse("/admin/users", status_code=303)

    return app


def app_from_env() -> FastAPI:
    """The app with settings from duluan.toml / DULUAN_* — for `uvicorn --factory --workers N
    duluan.web:app_from_env`, which runs several processes (login throttling is then per process)."""
    from duluan.settings import load_settings

    return create_app(load_settings())


# -- small helpers -------------------------------------------------------------------------------------


def local_time(value: datetime | str | None, tz: tzinfo) -> str:
    """A UTC timestamp (datetime or ISO string) as local 'dd/mm/YYYY HH:MM' for people."""
    if value is None or value == "":
        return "—"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(tz).strftime("%d/%m/%Y %H:%M")


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="/")


def _safe_next(target: str) -> str:
    """Only same-site paths: never redirect a login to another site (open redirect)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _status_title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _days_ago(settings: Settings, days: int) -> datetime:
    today = datetime.now(settings.tz).date()
    return datetime.combine(today - timedelta(days=days - 1), time.min, settings.tz)


def _date_ranges(today: date) -> list[tuple[str, str, str]]:
    """The date facet's choices: (label, from, to) as the search form's YYYY-MM-DD values."""
    return [
        (N_("Hôm nay"), today.isoformat(), today.isoformat()),
        (N_("7 ngày qua"), (today - timedelta(days=6)).isoformat(), today.isoformat()),
        (N_("30 ngày qua"), (today - timedelta(days=29)).isoformat(), today.isoformat()),
        (N_("Năm nay"), date(today.year, 1, 1).isoformat(), today.isoformat()),
        (N_("Mọi lúc"), "", ""),
    ]


def _validated_source(raw: dict[str, Any]) -> SourceSpec:
    try:
        return SourceSpec.model_validate(raw, context=CHECK_TARGETS)  # SSRF guard: crawlers/ssrf.py
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise HTTPException(422, f"Nguồn không hợp lệ / invalid source: {problems}") from None


def _source_form(spec: SourceSpec | None) -> dict[str, Any]:
    if spec is None:
        return {
            "id": "",
            "name": "",
            "type": "rss",
            "source_type": "news",
            "start_urls": "",
            "schedule": "every 30m",
            "enabled": True,
        }
    return {
        "id": spec.id,
        "name": spec.name,
        "type": spec.type.value,
        "source_type": spec.source_type.value,
        "start_urls": "\n".join(spec.start_urls),
        "schedule": spec.schedule,
        "enabled": spec.enabled,
    }


def _rule_from_form(form: dict[str, str]) -> tuple[dict[str, Any] | None, str | None]:
    """The rule editor's fields as a RuleSpec dict, or an error naming the field to fix."""
    try:
        params = json.loads(form.get("params") or "{}")
        channels = json.loads(form.get("channels") or "[]")
    except json.JSONDecodeError as exc:
        return None, f"Tham số hoặc kênh nhận không phải JSON hợp lệ: {exc}"
    if not isinstance(params, dict) or not isinstance(channels, list):
        return None, "Tham số phải là một đối tượng JSON {...}; kênh nhận là một danh sách [...]"
    filters: dict[str, Any] = {
        k: form[k] for k in ("topic", "sentiment", "source", "source_type") if form.get(k, "").strip()
    }
    relevance = form.get("min_province_relevance", "").strip()
    if relevance:
        try:
            filters["min_province_relevance"] = float(relevance)
        except ValueError:
            return None, "Mức liên quan tối thiểu phải là số từ 0 đến 1"
    try:
        suppression = int(form.get("suppression_minutes") or 60)
    except ValueError:
        return None, "Thời gian chặn lặp phải là số phút"
    return {
        "name": form.get("name", "").strip(),
        "description": form.get("description", ""),
        "owner": form.get("owner", "").strip(),
        "rule_type": form.get("rule_type", ""),
        "query": form.get("query", ""),
        "filters": filters,
        "params": params,
        "schedule": form.get("schedule", "").strip(),
        "channels": channels,
        "suppression_minutes": suppression,
        "enabled": form.get("enabled") == "on",
    }, None
