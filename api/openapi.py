"""The published OpenAPI document, told the truth about errors and signed webhook bodies.

FastAPI documents its own 422 shape (`HTTPValidationError`) and no other error, but every
error this API sends is an RFC 9457 problem (`api.problems`). Generated clients and the
fuzz test read this document, so it names the `Problem` schema for 422, for 401/403 on
every authenticated operation, and as the `default` response of every operation. The
provider webhooks read their raw bytes (the HMAC covers them), so FastAPI cannot see
their body model; it is added here.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from api.problems import PROBLEM_CONTENT_TYPE
from models.payments import ProviderWebhook
from models.profiles import KycWebhook


class ProblemFieldError(BaseModel):
    """One invalid field of a 422 problem."""

    pointer: str = Field(description="JSON pointer into the request, e.g. /body/limit_price/amount")
    field: str | None = Field(default=None, description="Dotted field name, when the error is about one field")
    detail: str
    code: str = Field(description="Machine-readable reason, e.g. greater_than or missing")


class Problem(BaseModel):
    """An RFC 9457 problem document (`application/problem+json`); problem types may add members."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="URI of the problem type, e.g. https://pap.dev/problems/validation-error")
    title: str
    status: int
    detail: str
    errors: list[ProblemFieldError] | None = None
    request_id: str | None = Field(default=None, description="Quote it to support; it is in the server logs")


SIGNED_BODIES: dict[tuple[str, str], type[BaseModel]] = {
    ("post", "/v1/payments/webhook"): ProviderWebhook,
    ("post", "/v1/profiles/kyc/webhook"): KycWebhook,
}
"""Operations that verify an `X-Signature` HMAC over the raw body before parsing it."""

FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_PROBLEM_CONTENT = {PROBLEM_CONTENT_TYPE: {"schema": _PROBLEM_REF}}
_AUTH_PROBLEMS = {
    "401": "No valid access token (missing, expired or revoked)",
    "403": "The token's roles, MFA or ownership do not allow this",
}


def install_openapi(app: FastAPI) -> None:
    """Serve the corrected document at /openapi.json (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            app.openapi_schema = with_problems(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def with_problems(document: dict[str, Any]) -> dict[str, Any]:
    """Document problem responses and signed bodies in an OpenAPI document FastAPI generated."""
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    for name in FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    models: list[type[BaseModel]] = [Problem, *SIGNED_BODIES.values()]
    body_models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(model, "validation") for model in models]
    _, definitions = models_json_schema(body_models, ref_template="#/components/schemas/{model}")
    for name, schema in definitions.get("$defs", {}).items():
        schemas.setdefault(name, schema)
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            _document_problems(operation)
            model = SIGNED_BODIES.get((method, path))
            if model is not None:
                operation["requestBody"] = _signed_body(model)
    return document


def _document_problems(operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    if operation.get("security"):
        for status, description in _AUTH_PROBLEMS.items():
            responses.setdefault(status, {"description": description})
    for status, response in responses.items():
        if status.startswith("4"):
            response["content"] = _PROBLEM_CONTENT
    if "422" in responses:
        responses["422"]["description"] = "The request is not valid; `errors` names each field"
    responses["default"] = {"description": "Any other error, as an RFC 9457 problem", "content": _PROBLEM_CONTENT}


def _signed_body(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "required": True,
        "description": "JSON signed with HMAC-SHA256 of the raw bytes, hex, in the X-Signature header",
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
    }
