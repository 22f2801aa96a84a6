"""Browser plumbing for /app: the session cookie, CSRF double-submit, security headers and rendering.

The session cookie holds the API's own access + refresh tokens (HttpOnly,
SameSite=Lax, Secure in production); an expired access token is refreshed
once per request. Every POST must carry the CSRF cookie's value in the
`csrf_token` form field or the `X-CSRF-Token` header (htmx sends it via
`hx-headers` on <body>).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import StateDep
from api.state import AppState
from pap.db import transaction
from services import identity, notifications
from services.errors import DomainError, Forbidden, Unauthenticated
from services.identity.sessions import IssuedTokens
from services.identity.tokens import Principal

SESSION_COOKIE = "pap_session"
CSRF_COOKIE = "pap_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'"

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


class LoginRequired(Exception):
    """Raised by the viewer dependency; answered with a redirect to the login page."""


class CsrfRejected(Forbidden):
    type = "csrf-rejected"
    title = "The form's CSRF token is missing or wrong"


def _secure(request: Request) -> bool:
    return bool(request.app.state.pap.resources.settings.is_production)


def set_session(request: Request, response: Response, tokens: IssuedTokens | tuple[str, str]) -> None:
    access, refresh = (tokens.access_token, tokens.refresh_token) if isinstance(tokens, IssuedTokens) else tokens
    response.set_cookie(
        SESSION_COOKIE,
        f"{access}|{refresh}",
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/app",
        max_age=30 * 24 * 3600,
    )


def clear_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/app")


def csrf_token(request: Request) -> str:
    """The CSRF token of this browser (minted on first sight; the middleware sets the cookie)."""
    token = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
    if not token:
        token = secrets.token_urlsafe(32)
        request.state.new_csrf = token
    return str(token)


async def check_csrf(request: Request) -> None:
    """Double-submit check on every state-changing request."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        sent = str((await request.form()).get(CSRF_FIELD, ""))
    if not cookie or not sent or not hmac.compare_digest(cookie.encode(), sent.encode()):
        raise CsrfRejected("Reload the page and submit the form again.")


async def optional_viewer(request: Request, state: StateDep) -> Principal | None:
    """The signed-in principal from the session cookie, refreshing an expired access token once."""
    raw = request.cookies.get(SESSION_COOKIE, "")
    access, _, refresh = raw.partition("|")
    if not access:
        return None
    try:
        principal = state.keyring.verify(access)
    except Unauthenticated:
        rotated = await _rotate(state, refresh) if refresh else None
        if rotated is None:
            return None
        request.state.new_session = rotated
        principal = state.keyring.verify(rotated[0])
    if await state.is_revoked(principal):
        return None
    request.state.principal = principal
    return principal


REFRESH_GRACE_SECONDS = 10
"""How long racing requests of one browser may reuse the pair the first of them got."""


async def _rotate(state: AppState, refresh: str) -> tuple[str, str] | None:
    """Refresh once per refresh token even when requests race (a page and its htmx poll): the first
    request rotates under a Redis lock and leaves the new pair for a few seconds; the others reuse it, so
    the API's reuse detection never revokes a browser session by accident, while a cookie replayed later
    (stolen) still trips it."""
    redis = state.resources.redis
    key = "pap:web:refreshed:" + hashlib.sha256(refresh.encode()).hexdigest()
    for _ in range(50):
        cached = await redis.get(key)
        if cached:
            access, _sep, new_refresh = (cached.decode() if isinstance(cached, bytes) else str(cached)).partition("|")
            return access, new_refresh
        if await redis.set(key + ":lock", "1", nx=True, ex=10):
            async with transaction(state.resources.sessions) as session:
                outcome = await identity.refresh(session, redis, state.keyring, refresh_token=refresh)
            if isinstance(outcome, DomainError):
                await redis.delete(key + ":lock")  # a refused token: the next request learns it at once, not in 10 s
                return None
            await redis.set(key, f"{outcome.access_token}|{outcome.refresh_token}", ex=REFRESH_GRACE_SECONDS)
            return outcome.access_token, outcome.refresh_token
        await asyncio.sleep(0.1)  # another request of this browser is rotating right now
    return None


async def viewer(principal: Annotated[Principal | None, Depends(optional_viewer)]) -> Principal:
    if principal is None:
        raise LoginRequired()
    return principal


Viewer = Annotated[Principal, Depends(viewer)]
MaybeViewer = Annotated[Principal | None, Depends(optional_viewer)]


async def render(
    request: Request, template: str, context: dict[str, Any] | None = None, *, status_code: int = 200
) -> HTMLResponse:
    """A page with the shared context: the viewer, CSRF token and the unread notification count."""
    principal: Principal | None = getattr(request.state, "principal", None)
    unread = 0
    if principal is not None:
        async with request.app.state.pap.resources.sessions() as session:
            unread = await notifications.unread_count(session, principal.user_id)
    ctx: dict[str, Any] = {
        "principal": principal,
        "csrf": csrf_token(request),
        "form_nonce": secrets.token_hex(16),
        "unread": unread,
        "errors": {},
        "form": {},
    }
    ctx.update(context or {})
    return templates.TemplateResponse(request, template, ctx, status_code=status_code)


FORM_ONCE_SECONDS = 24 * 3600


def _form_key(principal: Principal, nonce: str) -> str | None:
    if not (0 < len(nonce) <= 64 and nonce.isascii() and nonce.isalnum()):
        return None  # no nonce (or not one we issued): the form acts as submitted
    return f"pap:web:form:{principal.user_id}:{nonce}"


async def first_submission(request: Request, principal: Principal, nonce: str) -> bool:
    """False when this form (its one-time `form_nonce`) was already submitted: a double click or a resubmit."""
    key = _form_key(principal, nonce)
    redis = request.app.state.pap.resources.redis
    return key is None or bool(await redis.set(key, "1", nx=True, ex=FORM_ONCE_SECONDS))


async def forget_submission(request: Request, principal: Principal, nonce: str) -> None:
    """A submission that changed nothing (refused input) frees its nonce, so resending the same form acts."""
    key = _form_key(principal, nonce)
    if key is not None:
        await request.app.state.pap.resources.redis.delete(key)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a page of this app, or its home; never another site (no open redirect)."""
    if (
        value
        and len(value) <= 2048
        and (value == "/app" or value.startswith("/app/"))
        and "\\" not in value
        and value.isprintable()
    ):
        return value
    return "/app"


def field_errors(error: DomainError | ValidationError) -> dict[str, str]:
    """Map problem `errors[]` (or pydantic errors) to form field names; `_` holds the general message."""
    out: dict[str, str] = {}
    if isinstance(error, ValidationError):
        for item in error.errors():
            name = ".".join(str(p) for p in item["loc"]) or "_"
            out.setdefault(name.split(".")[0], str(item["msg"]).removeprefix("Value error, "))
        return out
    for problem in error.errors or []:
        name = str(problem.get("field") or str(problem.get("pointer", "")).rsplit("/", 1)[-1] or "_")
        out.setdefault(name.split(".")[0], str(problem.get("detail", "invalid")))
    out.setdefault("_", error.detail)
    return out


class SecurityHeadersMiddleware:
    """CSP and friends on /app responses; sets the CSRF cookie and refreshed session cookies."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or not path.startswith("/app"):
            await self.app(scope, receive, send)
            return
        production = False

        async def wrapped(message: Message) -> None:
            nonlocal production
            if message["type"] == "http.response.start":
                state = scope.get("state", {})
                response = Response()
                pap = scope["app"].state.pap if hasattr(scope.get("app"), "state") else None
                production = bool(pap and pap.resources.settings.is_production)
                if state.get("new_csrf"):
                    response.set_cookie(
                        CSRF_COOKIE, state["new_csrf"], httponly=True, samesite="lax", secure=production, path="/app"
                    )
                headers = list(message.get("headers", []))
                cookie_prefix = f"{SESSION_COOKIE}=".encode()
                route_set_session = any(k.lower() == b"set-cookie" and v.startswith(cookie_prefix) for k, v in headers)
                # The route's own session cookie (MFA upgrade, logout) wins over the pair refreshed on the way in:
                # browsers keep the last cookie, and that pair may already be spent.
                if state.get("new_session") and not route_set_session:
                    access, refresh = state["new_session"]
                    response.set_cookie(
                        SESSION_COOKIE,
                        f"{access}|{refresh}",
                        httponly=True,
                        samesite="lax",
                        secure=production,
                        path="/app",
                        max_age=30 * 24 * 3600,
                    )
                headers += [(k.encode(), v.encode()) for k, v in response.headers.items() if k == "set-cookie"]
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),  # no page URL (a reset link's token) goes anywhere
                ]
                if not path.startswith("/app/static/"):
                    headers.append((b"cache-control", b"no-store"))  # pages show someone's account: never kept
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, wrapped)
