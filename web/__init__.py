"""The investor client app: server-rendered pages served by the API process under /app."""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ExceptionHandler

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
    """Errors on /app pages (a domain error, a malformed path or form value, an unknown page, a value the
    database cannot store) render as an HTML page with the problem's title and detail; the API keeps its
    problem+json."""
    for kind in (DomainError, RequestValidationError, StarletteHTTPException, DBAPIError):
        app.add_exception_handler(kind, _as_page(app.exception_handlers[kind]))


def _as_page(api_handler: Callable[[Request, Any], Response | Awaitable[Response]]) -> ExceptionHandler:
    async def handle(request: Request, exc: Exception) -> Response:
        answer = api_handler(request, exc)
        problem = await answer if inspect.isawaitable(answer) else answer
        if not request.url.path.startswith("/app"):
            return problem
        body = json.loads(bytes(problem.body))
        page = await render(request, "error.html", {"problem": body}, status_code=problem.status_code)
        if "retry-after" in problem.headers:
            page.headers["retry-after"] = problem.headers["retry-after"]
        return page

    return handle


def install(app: FastAPI) -> None:
    """Mount the pages, their static files and the browser security headers on the API app."""
    app.include_router(router)
    app.mount("/app/static", StaticFiles(directory=Path(__file__).parent / "static"), name="web-static")
    app.add_exception_handler(LoginRequired, _login_required)
    _html_errors(app)
    app.add_middleware(SecurityHeadersMiddleware)


__all__ = ["install", "router"]
