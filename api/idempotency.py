"""`Idempotency-Key` for POST requests, recorded in PostgreSQL.

The same key with the same body replays the first response; the same key with
another body is a 409 problem; a key whose first request is still running is a
409 too. Keys are scoped to the caller (its credentials) and the path, so two
users never collide; a revoked token is no caller, so it replays nothing. Server
errors are not recorded, so the client may retry. The routes that answer with
credentials (tokens, TOTP secrets, recovery codes) are never recorded: nothing
secret is stored, and they are safe to repeat without a key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import delete, text
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.datastructures import Headers
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.problems import problem_response
from models.platform import IdempotencyRecord
from pap.db import SessionFactory, insert_unless_conflict, transaction
from services.errors import DomainError

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_REPLAYED_HEADERS = ("content-type", "location")
CREDENTIAL_ROUTES = ("/v1/auth/token", "/v1/auth/refresh", "/v1/auth/mfa/")
MAX_PATH_IN_SCOPE = 128
"""Longer paths are hashed: the caller's part (at most 64) and the path must fit a 256-character key."""
_EXPIRED = text(
    """
    DELETE FROM platform.idempotency_record WHERE ctid IN (
        SELECT ctid FROM platform.idempotency_record WHERE created_at < :before LIMIT :limit
    )
    """
)


async def prune_idempotency_records(session: AsyncSession, *, before: datetime, limit: int) -> int:
    """Stored responses older than `before` (housekeeping); a retry after that runs the request again."""
    result = await session.execute(_EXPIRED, {"before": before, "limit": limit})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]  # a DELETE gives a CursorResult


async def default_scope(request: Request) -> str:
    """The caller's identity for key scoping: the verified, unrevoked user (so a refreshed token keeps its keys),
    else a hash of whatever credentials were sent (anonymous callers share one scope)."""
    credentials = request.headers.get("authorization", "")
    scheme, _, token = credentials.partition(" ")
    state = getattr(request.app.state, "pap", None)
    if scheme.lower() == "bearer" and token and state is not None:
        try:
            principal = state.keyring.verify(token)
        except DomainError:
            pass
        else:
            if not await state.is_revoked(principal):
                return f"user:{principal.user_id}"
    return hashlib.sha256(credentials.encode()).hexdigest()


class IdempotencyMiddleware(BaseHTTPMiddleware):
    def __init__(
        self,
        app: ASGIApp,
        sessions: Callable[[], SessionFactory],
        scope_of: Callable[[Request], Awaitable[str]] = default_scope,
    ) -> None:
        super().__init__(app)
        self._sessions = sessions
        self._scope_of = scope_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Requests without a key (most) go straight through, skipping BaseHTTPMiddleware's machinery."""
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or HEADER not in Headers(scope=scope)
            or scope["path"].startswith(CREDENTIAL_ROUTES)
        ):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        key = request.headers[HEADER]
        if not 1 <= len(key) <= 255 or not key.isprintable():
            return problem_response(
                422,
                "invalid-idempotency-key",
                "Invalid Idempotency-Key",
                "The key must be 1-255 printable characters.",
            )
        body = await request.body()
        request_hash = hashlib.sha256(body).hexdigest()
        path = request.url.path
        if len(path) > MAX_PATH_IN_SCOPE:  # any path a client sends must fit the scope column
            path = "sha256:" + hashlib.sha256(path.encode()).hexdigest()
        scope = f"{await self._scope_of(request)}:{path}"
        sessions = self._sessions()

        async with transaction(sessions) as session:
            claimed = await insert_unless_conflict(
                session,
                IdempotencyRecord,
                {"scope": scope, "key": key, "request_hash": request_hash},
                returning="key",
            )
            first = claimed.first() is not None
            record = None if first else await session.get(IdempotencyRecord, (scope, key))

        if record is not None:
            if record.request_hash != request_hash:
                return problem_response(
                    409,
                    "idempotency-key-reused",
                    "Idempotency-Key reused",
                    "This key was already used with a different request body.",
                )
            if record.status_code is None:
                return problem_response(
                    409,
                    "request-in-progress",
                    "Request in progress",
                    "The first request with this key is still running.",
                )
            headers = dict(record.response_headers or {}) | {REPLAYED_HEADER: "true"}
            return Response(
                record.response_body or b"",
                status_code=record.status_code,
                headers=headers,
            )

        try:
            response = await call_next(request)
        except BaseException:
            await self._forget(sessions, scope, key)
            raise
        if response.status_code >= 500:
            await self._forget(sessions, scope, key)
            return response
        chunks = [chunk async for chunk in response.body_iterator]  # type: ignore[attr-defined]
        content = b"".join(c if isinstance(c, bytes) else c.encode() for c in chunks)
        headers = {k: v for k, v in response.headers.items() if k.lower() in _REPLAYED_HEADERS}
        async with transaction(sessions) as session:
            record = await session.get(IdempotencyRecord, (scope, key), with_for_update=True)
            if record is not None:
                record.status_code = response.status_code
                record.response_body = content.decode()
                record.response_headers = headers
        return Response(content, status_code=response.status_code, headers=dict(response.headers))

    async def _forget(self, sessions: SessionFactory, scope: str, key: str) -> None:
        async with transaction(sessions) as session:
            await session.execute(
                delete(IdempotencyRecord).where(
                    col(IdempotencyRecord.scope) == scope,
                    col(IdempotencyRecord.key) == key,
                )
            )
