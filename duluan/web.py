"""The web app: health probes, the search API and a minimal search page.

The full Vietnamese UI with accounts and roles is its own issue; until then the service binds to
127.0.0.1 only, so nothing here is reachable from the network.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from duluan.settings import Settings
from duluan.wiring import open_backend
from index.backend import QueryError, SearchFilters
from schema import SENTIMENTS, TOPICS, Document

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


class SearchHitOut(BaseModel):
    id: str
    url: str
    title: str
    published_at: datetime | None
    source: str
    topic: str | None
    sentiment: str | None
    score: float
    highlights: dict[str, str]


class SearchOut(BaseModel):
    total: int
    hits: list[SearchHitOut]


def _problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    """RFC 9457 problem details: a message staff can act on."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(title="Duluan API", version="0.1.0", description="Giám sát thông tin báo chí, mạng xã hội")

    @app.exception_handler(QueryError)
    async def _query_error(_request: Request, exc: QueryError) -> JSONResponse:
        return _problem(400, "Invalid query", str(exc), detail_vi=exc.message_vi, position=exc.position)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], response_model=None)
    def readyz() -> dict[str, Any] | JSONResponse:
        """Readiness: the app database and the index can be opened."""
        checks: dict[str, str] = {}
        try:
            engine = sa.create_engine(settings.db_url)
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            engine.dispose()
            checks["database"] = "ok"
        except Exception as exc:  # report, do not crash: this endpoint exists to say what is wrong
            checks["database"] = f"error: {type(exc).__name__}"
        try:
            backend = open_backend(settings)
            backend.count()
            backend.close()
            checks["index"] = "ok"
        except Exception as exc:
            checks["index"] = f"error: {type(exc).__name__}"
        ok = all(v == "ok" for v in checks.values())
        body = {"status": "ok" if ok else "unavailable", "checks": checks}
        return body if ok else JSONResponse(body, status_code=503)

    def _search(
        q: str,
        topic: str | None,
        sentiment: str | None,
        source: str | None,
        sort: str,
        limit: int,
        offset: int,
    ) -> SearchOut:
        backend = open_backend(settings)
        try:
            result = backend.search(
                q,
                SearchFilters(topic=topic, sentiment=sentiment, source=source),
                sort="date" if sort == "date" else "relevance",
                limit=limit,
                offset=offset,
            )
        finally:
            backend.close()
        return SearchOut(
            total=result.total,
            hits=[
                SearchHitOut(
                    id=h.document.id,
                    url=h.document.url,
                    title=h.document.title,
                    published_at=h.document.published_at,
                    source=h.document.source,
                    topic=h.document.topic,
                    sentiment=h.document.sentiment,
                    score=h.score,
                    highlights=h.highlights,
                )
                for h in result.hits
            ],
        )

    @app.get("/api/v1/search", response_model=SearchOut, tags=["search"])
    def api_search(
        q: Annotated[str, Query(max_length=10_000, description="Staff query language")] = "",
        topic: str | None = None,
        sentiment: str | None = None,
        source: str | None = None,
        sort: Literal["relevance", "date"] = "relevance",
        limit: Annotated[int, Query(ge=1, le=200)] = 20,
        offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
    ) -> SearchOut:
        """Search documents with the staff query language (see `duluan search --explain`)."""
        return _search(q, topic, sentiment, source, sort, limit, offset)

    @app.get("/api/v1/documents/{doc_id}", response_model=Document, tags=["documents"])
    def api_document(doc_id: str) -> Document:
        backend = open_backend(settings)
        try:
            doc = backend.get(doc_id)
        finally:
            backend.close()
        if doc is None:
            raise HTTPException(404, f"No document with id {doc_id!r}; search first to find ids.")
        return doc

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def search_page(request: Request, q: str = "", topic: str | None = None) -> HTMLResponse:
        error = None
        result = SearchOut(total=0, hits=[])
        try:
            result = _search(q, topic or None, None, None, "relevance" if q else "date", 50, 0)
        except QueryError as exc:
            error = f"{exc.message_vi} / {exc}"
        return TEMPLATES.TemplateResponse(
            request,
            "search.html",
            {
                "q": q,
                "topic": topic or "",
                "result": result,
                "error": error,
                "topics": TOPICS,
                "sentiments": SENTIMENTS,
            },
        )

    return app
