"""Holdings over HTTP: investors declare lots, compliance or that company's issuer verifies them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from pap.db import SessionFactory
from services.identity.permissions import Role
from tests.market_support import new_security

Headers = Callable[..., dict[str, str]]


@pytest.fixture
async def listed(sessions: SessionFactory) -> tuple[uuid.UUID, uuid.UUID]:
    return await new_security(sessions)


async def declare(api: httpx.AsyncClient, headers: dict[str, str], security_id: uuid.UUID, **extra: Any) -> Any:
    body = {"security_id": str(security_id), "quantity": 1_000, **extra}
    response = await api.post("/v1/holdings", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_investor_declares_and_compliance_verifies_a_holding(
    api: httpx.AsyncClient, token_for: Headers, listed: tuple[uuid.UUID, uuid.UUID]
) -> None:
    _, security_id = listed
    investor = token_for(uuid.uuid4(), Role.INVESTOR)
    holding = await declare(
        api, investor, security_id, cost_basis={"amount": "3.25", "currency": "USD"}, acquisition_date="2021-05-04"
    )
    assert holding["status"] == "pending_verification"

    mine = (await api.get("/v1/holdings", headers=investor)).json()
    assert [(h["id"], h["quantity"], h["reserved_quantity"], h["available_quantity"]) for h in mine["items"]] == [
        (holding["id"], 1_000, 0, 0)
    ]

    compliance = token_for(uuid.uuid4(), Role.COMPLIANCE, mfa=True)
    verified = await api.post(f"/v1/holdings/{holding['id']}/verify", headers=compliance)
    assert verified.status_code == 200, verified.text
    assert verified.json()["status"] == "verified"

    mine = (await api.get("/v1/holdings", headers=investor)).json()["items"]
    assert mine[0]["status"] == "verified"
    assert mine[0]["available_quantity"] == 1_000
    assert mine[0]["lots"] == [
        {"quantity": 1_000, "cost_basis": {"amount": "3.2500", "currency": "USD"}, "acquisition_date": "2021-05-04"}
    ]
    movements = (await api.get(f"/v1/holdings/{holding['id']}/movements", headers=investor)).json()["items"]
    assert [(m["kind"], m["quantity"]) for m in movements] == [("deposit", 1_000)]


async def test_only_the_issuer_of_that_company_may_verify(
    api: httpx.AsyncClient, token_for: Headers, listed: tuple[uuid.UUID, uuid.UUID]
) -> None:
    company_id, security_id = listed
    holding = await declare(api, token_for(uuid.uuid4(), Role.INVESTOR), security_id)

    other_issuer = token_for(uuid.uuid4(), Role.ISSUER, company_id=uuid.uuid4())
    refused = await api.post(f"/v1/holdings/{holding['id']}/verify", headers=other_issuer)
    assert refused.status_code == 403
    investor = token_for(uuid.uuid4(), Role.INVESTOR)
    assert (await api.post(f"/v1/holdings/{holding['id']}/verify", headers=investor)).status_code == 403

    issuer = token_for(uuid.uuid4(), Role.ISSUER, company_id=company_id)
    assert (await api.get(f"/v1/holdings/{holding['id']}", headers=issuer)).status_code == 200
    verified = await api.post(f"/v1/holdings/{holding['id']}/verify", headers=issuer)
    assert verified.status_code == 200
    assert verified.json()["status"] == "verified"


async def test_compliance_without_mfa_cannot_verify(
    api: httpx.AsyncClient, token_for: Headers, listed: tuple[uuid.UUID, uuid.UUID]
) -> None:
    holding = await declare(api, token_for(uuid.uuid4(), Role.INVESTOR), listed[1])
    response = await api.post(
        f"/v1/holdings/{holding['id']}/verify", headers=token_for(uuid.uuid4(), Role.COMPLIANCE, mfa=False)
    )
    assert response.status_code == 403
    assert response.json()["type"].endswith("/mfa-required")


async def test_investor_cannot_see_another_investors_holding(
    api: httpx.AsyncClient, token_for: Headers, listed: tuple[uuid.UUID, uuid.UUID]
) -> None:
    owner = token_for(uuid.uuid4(), Role.INVESTOR)
    holding = await declare(api, owner, listed[1])
    stranger = token_for(uuid.uuid4(), Role.INVESTOR)
    assert (await api.get(f"/v1/holdings/{holding['id']}", headers=stranger)).status_code == 404
    assert (await api.get(f"/v1/holdings/{holding['id']}/movements", headers=stranger)).status_code == 404
    assert (await api.get("/v1/holdings", headers=stranger)).json()["items"] == []
    assert (await api.get(f"/v1/holdings/{holding['id']}", headers=owner)).status_code == 200


async def test_rejected_holding_cannot_be_verified_later(
    api: httpx.AsyncClient, token_for: Headers, listed: tuple[uuid.UUID, uuid.UUID]
) -> None:
    investor = token_for(uuid.uuid4(), Role.INVESTOR)
    holding = await declare(api, investor, listed[1])
    compliance = token_for(uuid.uuid4(), Role.COMPLIANCE, mfa=True)
    rejected = await api.post(
        f"/v1/holdings/{holding['id']}/reject", json={"reason": "no share certificate"}, headers=compliance
    )
    assert rejected.status_code == 200
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["decision_reason"] == "no share certificate"
    again = await api.post(f"/v1/holdings/{holding['id']}/verify", headers=compliance)
    assert again.status_code == 409
    mine = (await api.get("/v1/holdings", headers=investor)).json()["items"]
    assert mine[0]["available_quantity"] == 0


async def test_invalid_holding_is_a_422_with_field_errors_and_creates_nothing(
    api: httpx.AsyncClient, token_for: Headers, listed: tuple[uuid.UUID, uuid.UUID]
) -> None:
    investor = token_for(uuid.uuid4(), Role.INVESTOR)
    response = await api.post(
        "/v1/holdings",
        json={"security_id": str(listed[1]), "quantity": 0, "cost_basis": {"amount": "1.5", "currency": "usd"}},
        headers=investor,
    )
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert "quantity" in fields
    assert "cost_basis.currency" in fields
    unknown = await api.post("/v1/holdings", json={"security_id": str(uuid.uuid4()), "quantity": 5}, headers=investor)
    assert unknown.status_code == 422
    assert unknown.json()["type"].endswith("/unknown-security")
    assert unknown.json()["errors"][0]["field"] == "security_id"
    assert (await api.get("/v1/holdings", headers=investor)).json()["items"] == []


async def test_admin_is_not_an_investor_for_holdings(
    api: httpx.AsyncClient, token_for: Headers, listed: tuple[uuid.UUID, uuid.UUID]
) -> None:
    response = await api.post(
        "/v1/holdings",
        json={"security_id": str(listed[1]), "quantity": 5},
        headers=token_for(uuid.uuid4(), Role.ADMIN, mfa=True),
    )
    assert response.status_code == 403


async def test_no_holding_and_no_verified_total_exceeds_the_companys_shares(
    api: httpx.AsyncClient, token_for: Headers, listed: tuple[uuid.UUID, uuid.UUID]
) -> None:
    investor = token_for(uuid.uuid4(), Role.INVESTOR)
    too_many = await api.post(
        "/v1/holdings", json={"security_id": str(listed[1]), "quantity": 10_000_001}, headers=investor
    )
    assert too_many.status_code == 422
    assert too_many.json()["type"].endswith("/more-than-fully-diluted")
    assert (await api.get("/v1/holdings", headers=investor)).json()["items"] == []

    compliance = token_for(uuid.uuid4(), Role.COMPLIANCE, mfa=True)
    first = await declare(api, investor, listed[1], quantity=6_000_000)
    second = await declare(api, token_for(uuid.uuid4(), Role.INVESTOR), listed[1], quantity=6_000_000)
    decided = await asyncio.gather(
        *(api.post(f"/v1/holdings/{h['id']}/verify", headers=compliance) for h in (first, second))
    )
    assert sorted(r.status_code for r in decided) == [200, 409]  # 12 million of 10 million: one is refused
    refused = next(r for r in decided if r.status_code == 409)
    assert refused.json()["type"].endswith("/verified-beyond-fully-diluted")

    admin = token_for(uuid.uuid4(), Role.ADMIN, mfa=True)
    shrunk = await api.patch(f"/v1/companies/{listed[0]}", json={"fully_diluted_shares": 5_999_999}, headers=admin)
    assert shrunk.status_code == 409 and shrunk.json()["type"].endswith("/fewer-shares-than-verified")
    fits = await api.patch(f"/v1/companies/{listed[0]}", json={"fully_diluted_shares": 6_000_000}, headers=admin)
    assert fits.status_code == 200, fits.text
