"""RFC 9457 problem+json for every error the API returns; clients never see a stack trace."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from pap.telemetry import request_id_var
from services.errors import DomainError

log = structlog.get_logger(__name__)

PROBLEM_BASE = "https://pap.dev/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str | None = None,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
    }
    body["detail"] = detail or title  # always present: clients may show it as is
    if errors is not None:
        body["errors"] = errors
    request_id = request_id_var.get()
    if request_id:
        body["request_id"] = request_id
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_CONTENT_TYPE, headers=headers)


def _pointer(loc: tuple[Any, ...] | list[Any]) -> str:
    return "/" + "/".join(str(part) for part in loc)


def validation_errors(raw: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "pointer": _pointer(error.get("loc", ())),
            "field": ".".join(str(p) for p in error.get("loc", ())[1:]) or None,
            "detail": error.get("msg", "invalid"),
            "code": error.get("type", "invalid"),
        }
        for error in raw
    ]


async def _domain_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DomainError)
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    retry_after = error.extra.pop("retry_after", None)
    if retry_after is not None:
        headers = {"Retry-After": str(int(retry_after))}
    return problem_response(
        error.status,
        error.type,
        error.title,
        error.detail,
        errors=error.errors,
        headers=headers,
        **error.extra,
    )


async def _validation_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    return problem_response(
        422,
        "validation-error",
        "The request is not valid",
        "One or more fields are invalid; see errors.",
        errors=validation_errors(list(error.errors())),
    )


async def _http_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    phrase = HTTPStatus(error.status_code).phrase
    slug = phrase.lower().replace(" ", "-").replace("'", "")
    detail = error.detail if isinstance(error.detail, str) and error.detail != phrase else None
    return problem_response(error.status_code, slug, phrase, detail, headers=getattr(error, "headers", None))


DATA_EXCEPTION_CLASS = "22"
"""SQLSTATE class 22, data exception: a value PostgreSQL cannot store (a NUL character, an over-long
string, an out-of-range number). Validation should catch these first; this is the net under it."""
TRY_AGAIN_STATES = frozenset({"40001", "40P01"})
"""serialization_failure, deadlock_detected: PostgreSQL rolled the transaction back; the same request may pass."""


async def _database_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DBAPIError)
    sqlstate = str(getattr(error.orig, "sqlstate", None) or "")
    if sqlstate in TRY_AGAIN_STATES:
        log.warning("request collided with another transaction", sqlstate=sqlstate)
        return problem_response(
            503,
            "try-again",
            "The request collided with another change",
            "Nothing was changed; send the request again.",
            headers={"Retry-After": "1"},
        )
    if not sqlstate.startswith(DATA_EXCEPTION_CLASS):
        return await _unexpected_error(request, error)
    log.warning("request value not storable", sqlstate=sqlstate)
    return problem_response(
        422,
        "invalid-value",
        "A value in the request cannot be stored",
        "A text or number in the request is not storable (for example a NUL character or an over-long value).",
    )


async def _unexpected_error(_: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=error)
    return problem_response(500, "internal-error", "Internal error", "An unexpected error occurred.")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unexpected_error)
