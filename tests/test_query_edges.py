"""Query strings at the edges: forged cursors, dates before any market data, filters taken literally."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable

import httpx

from pap.db import SessionFactory
from services.identity.permissions import Role
from tests.market_support import new_security

Headers = Callable[..., dict[str, str]]


async def test_a_deeply_nested_cursor_is_a_422_problem(api: httpx.AsyncClient, token_for: Headers) -> None:
    investor = token_for(uuid.uuid4(), Role.INVESTOR)
    too_deep = base64.urlsafe_b64encode(b"[" * 1200).decode().rstrip("=")  # json.loads recurses past its limit
    nested = base64.urlsafe_b64encode(b"[" * 300).decode().rstrip("=")
    for path in ("/v1/notifications", "/v1/deals"):
        for cursor in (too_deep, nested):
            response = await api.get(path, params={"cursor": cursor}, headers=investor)
            assert response.status_code == 422, (path, response.text)
            assert response.headers["content-type"] == "application/problem+json"


async def test_a_reference_price_before_1900_is_a_422_problem(
    api: httpx.AsyncClient, sessions: SessionFactory, token_for: Headers
) -> None:
    _, security_id = await new_security(sessions)
    response = await api.get(
        f"/v1/securities/{security_id}/reference-price",
        params={"as_of": "0001-01-01T00:00:00Z"},
        headers=token_for(uuid.uuid4(), Role.INVESTOR),
    )
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "as_of"


async def test_a_security_price_is_positive(api: httpx.AsyncClient, token_for: Headers) -> None:
    admin = token_for(uuid.uuid4(), Role.ADMIN)
    company = await api.post(
        "/v1/companies",
        json={
            "name": f"Co {uuid.uuid4().hex[:8]}",
            "legal_name": "Co, Inc.",
            "jurisdiction": "US-DE",
            "sector": "testing",
            "fully_diluted_shares": 1000,
            "transfer_policy": {"rofr_days": 30, "issuer_approval_required": False},
        },
        headers=admin,
    )
    assert company.status_code == 201, company.text
    for price in ("-5", "0"):
        response = await api.post(
            f"/v1/companies/{company.json()['id']}/securities",
            json={"class_name": "Common", "kind": "common", "last_round_price": {"amount": price, "currency": "USD"}},
            headers=admin,
        )
        assert response.status_code == 422, response.text


async def test_the_sector_filter_matches_a_sector_not_a_pattern(
    api: httpx.AsyncClient, sessions: SessionFactory, token_for: Headers
) -> None:
    await new_security(sessions)  # sector "testing"
    investor = token_for(uuid.uuid4(), Role.INVESTOR)
    wildcard = await api.get("/v1/companies", params={"sector": "%"}, headers=investor)
    exact = await api.get("/v1/companies", params={"sector": "TESTING", "limit": 200}, headers=investor)
    assert wildcard.status_code == 200 and wildcard.json()["items"] == []
    assert exact.json()["items"] and {c["sector"] for c in exact.json()["items"]} == {"testing"}
