"""Response headers every page and API answer carries, on top of the app's own CSP middleware.

`duluan.web` sets Content-Security-Policy, X-Content-Type-Options, X-Frame-Options, Referrer-Policy,
Cross-Origin-Opener-Policy and Cache-Control; this adds what a browser would otherwise leave open:
no camera/microphone/geolocation/payment APIs for any page (Permissions-Policy), other sites may not
embed our responses (Cross-Origin-Resource-Policy), and no cross-domain policy files for old plug-ins.
Installed with one line, `install_security_headers(app)`, so the list lives in one place.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response

EXTRA_HEADERS: dict[str, str] = {
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()",
    "Cross-Origin-Resource-Policy": "same-origin",
    "X-Permitted-Cross-Domain-Policies": "none",
}


def install_security_headers(app: FastAPI) -> None:
    """Add `EXTRA_HEADERS` to every response (a route may still set its own value)."""

    @app.middleware("http")
    async def _extra_security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in EXTRA_HEADERS.items():
            response.headers.setdefault(name, value)
        return response


def install_ops_routes(app: FastAPI, state: Any) -> None:
    """What the ops side adds to the web app: the extra headers above and GET /metrics."""
    install_security_headers(app)
    mount_metrics(app, state)


def mount_metrics(app: Any, state: Any) -> None:
    """Add GET /metrics to the web app; `state` is its WebState (settings, engine, backend, tokens)."""
    from fastapi.responses import JSONResponse
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from prometheus_client.registry import CollectorRegistry

    from duluan.metrics import DuluanCollector, metrics_allowed

    registry = CollectorRegistry(auto_describe=False)
    registry.register(DuluanCollector(state.settings, state.engine, lambda: state.backend.count()))

    @app.get("/metrics", include_in_schema=False, response_model=None)
    def metrics(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        token_valid = (
            auth.lower().startswith("bearer ") and state.user_for_token(auth[7:].strip()) is not None
        )
        client = request.client.host if request.client else None
        if not metrics_allowed(client, request.headers, token_valid):
            response = JSONResponse(
                {
                    "type": "about:blank",
                    "title": "Unauthorized",
                    "status": 401,
                    "detail": "/metrics answers loopback clients (not through a proxy) or a valid "
                    "'Authorization: Bearer <token>' (create one with `duluan users token NAME`).",
                },
                status_code=401,
                media_type="application/problem+json",
            )
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
