"""The published OpenAPI document is valid and says what errors really look like.

Generated clients and the fuzz test trust /openapi.json: every error is documented as an
RFC 9457 problem, and the problems the running API sends validate against that schema.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import jsonschema
from openapi_spec_validator import validate as validate_openapi

from api.openapi import FASTAPI_VALIDATION_SCHEMAS
from services.identity.permissions import Role

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in document["paths"].items() for method, op in ops.items()]


async def test_every_operation_documents_its_errors_as_problems(api: httpx.AsyncClient) -> None:
    document = (await api.get("/openapi.json")).json()
    validate_openapi(document)
    assert not set(FASTAPI_VALIDATION_SCHEMAS) & set(document["components"]["schemas"])
    assert len(operations(document)) > 80
    for method, path, operation in operations(document):
        responses = operation["responses"]
        assert responses["default"]["content"] == PROBLEM, (method, path)
        for status, response in responses.items():
            if status.startswith("4"):
                assert response["content"] == PROBLEM, (method, path, status)
        if operation.get("security"):
            assert {"401", "403"} <= responses.keys(), (method, path)


async def test_signed_webhooks_publish_their_body_schema(api: httpx.AsyncClient) -> None:
    document = (await api.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    for path, model in (("/v1/payments/webhook", "ProviderWebhook"), ("/v1/profiles/kyc/webhook", "KycWebhook")):
        body = document["paths"][path]["post"]["requestBody"]
        assert body["required"] is True
        assert body["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{model}"}
        assert "event_id" in schemas[model]["required"]
    assert set(schemas["ProviderWebhook"]["properties"]) == {"event_id", "payment_id", "status", "amount"}


async def test_problems_the_api_sends_match_the_published_schema(
    api: httpx.AsyncClient, token_for: Callable[..., dict[str, str]]
) -> None:
    document = (await api.get("/openapi.json")).json()
    problem_schema = {"$ref": "#/components/schemas/Problem", "components": document["components"]}
    investor = token_for(uuid.uuid4(), Role.INVESTOR)
    sent = [
        await api.post("/v1/orders", json={"side": "sideways", "quantity": -1}, headers=investor),  # 422
        await api.get("/v1/orders"),  # 401
        await api.get("/v1/admin/audit", headers=investor),  # 403
        await api.get(f"/v1/orders/{uuid.uuid4()}", headers=investor),  # 404
        await api.post("/v1/payments/webhook", json={}, headers={"X-Signature": "00"}),  # 401, signed body
    ]
    assert [response.status_code for response in sent] == [422, 401, 403, 404, 401]
    for response in sent:
        assert response.headers["content-type"] == "application/problem+json"
        jsonschema.validate(response.json(), problem_schema)
    assert {error["field"] for error in sent[0].json()["errors"]} >= {"side", "security_id"}
