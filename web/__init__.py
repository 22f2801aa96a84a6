"""The investor client app: server-rendered pages served by the API process under /app."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from services.errors import DomainError
from web import account, deal, market
from web.core import LoginRequired, SecurityHeadersMiddleware, check_csrf, redirect, render, safe_next

router = APIRouter(prefix="/app", include_in_schema=False, dependencies=[Depends(check_csrf)])
router.add_api_route("", market.home, methods=["GET"])
router.include_router(account.router)
router.include_router(market.router)
router.include_router(deal.router)


async def _login_required(request: Request, exc: Exception) -> Response:
    """To the login page, which brings a page request (say, an emailed deal link) back to it afterwards."""
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": "/app/login"})
    page = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET" or safe_next(page) == "/app":
        return redirect("/app/login")
    return redirect(f"/app/login?{urlencode({'next': page})}")


def _html_errors(app: FastAPI) -> None:
    """Domain errors on /app pages render as HTML pages; the API keeps its problem+json."""
    api_handler = app.exception_handlers[DomainError]

    async def handle(request: Request, exc: Exception) -> Response:
        if not request.url.path.startswith("/app") or not isinstance(exc, DomainError):
            return await api_handler(request, exc)  # type: ignore[misc,no-any-return]
        return await render(request, "error.html", {"problem": exc}, status_code=exc.status)

    app.add_exception_handler(DomainError, handle)


def install(app: FastAPI) -> None:
    """Mount the pages, their static files and the browser security headers on the API app."""
    app.include_router(router)
    app.mount("/app/static", StaticFiles(directory=Path(__file__).parent / "static"), name="web-static")
    app.add_exception_handler(LoginRequired, _login_required)
    _html_errors(app)
    app.add_middleware(SecurityHeadersMiddleware)


__all__ = ["install", "router"]
