"""Which handler failures are infrastructure being away (wait for it) rather than a problem with the event.

A consumer retries a transient failure for as long as it lasts, holding its
partition, because the same event will succeed once PostgreSQL, the SMTP relay,
Temporal or the SMS provider answers again; dead-lettering it would lose good
events in every short outage. Anything else is the event's or the handler's
fault and gets a few attempts only.
"""

from __future__ import annotations

import socket

import aiosmtplib
import asyncpg
import httpx
import redis.exceptions
import sqlalchemy.exc
from temporalio.service import RPCError, RPCStatusCode

TRANSIENT_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
"""Admin/crash shutdown, cannot connect now (starting up or shutting down), too many connections.
Class 08 (connection exception) is transient as a whole."""

TRANSIENT_RPC_STATUSES = frozenset(
    {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED}
)
TRANSIENT_HTTP_STATUSES = frozenset({429, 502, 503, 504})
MAX_CAUSES = 10


def is_transient(error: BaseException) -> bool:
    """True when `error`, or an error it was raised from, says a service is unreachable for now."""
    cause: BaseException | None = error
    for _ in range(MAX_CAUSES):
        if cause is None:
            return False
        if _unreachable(cause):
            return True
        cause = cause.__cause__
    return False


def _unreachable(error: BaseException) -> bool:
    if isinstance(error, sqlalchemy.exc.DBAPIError):
        return error.connection_invalidated or _postgres_unavailable(error.orig)
    if isinstance(error, sqlalchemy.exc.TimeoutError):
        return True  # no pooled connection came free in time
    if isinstance(error, asyncpg.PostgresError):
        return _postgres_unavailable(error)
    if isinstance(error, RPCError):
        return error.status in TRANSIENT_RPC_STATUSES
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return 400 <= error.code < 500  # 4xx: try again later; 5xx: this message is refused
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code in TRANSIENT_HTTP_STATUSES
    if isinstance(error, httpx.TransportError | redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return True
    # Network errors (SMTP disconnects and timeouts among them); not e.g. a missing file.
    return isinstance(error, ConnectionError | TimeoutError | socket.gaierror) or type(error) is OSError


def _postgres_unavailable(error: BaseException | None) -> bool:
    sqlstate = getattr(error, "sqlstate", None)
    return isinstance(sqlstate, str) and (sqlstate.startswith("08") or sqlstate in TRANSIENT_SQLSTATES)
