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
    from duluan.metrics import mount_metrics

    install_security_headers(app)
    mount_metrics(app, state)
