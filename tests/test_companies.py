"""Companies over HTTP (admin writes, authenticated reads) and the transfer rules other contexts call."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from models.companies import PLATFORM_FEE_BPS
from models.platform import OutboxEvent
from pap.db import SessionFactory, transaction
from services import companies
from services.identity.permissions import Role
from tests.market_support import new_security

Headers = Callable[..., dict[str, str]]


def company_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": f"Acme {uuid.uuid4().hex[:8]}",
        "legal_name": "Acme Robotics, Inc.",
        "jurisdiction": "US-DE",
        "sector": "robotics",
        "fully_diluted_shares": 50_000_000,
        "transfer_policy": {"rofr_days": 45, "issuer_approval_required": True},
    }
    body.update(overrides)
    return body


@pytest.fixture
def admin(token_for: Headers) -> dict[str, str]:
    return token_for(uuid.uuid4(), Role.ADMIN, mfa=True)


@pytest.fixture
def investor(token_for: Headers) -> dict[str, str]:
    return token_for(uuid.uuid4(), Role.INVESTOR)


async def test_admin_registers_company_with_security_and_funding_round(
    api: httpx.AsyncClient, admin: dict[str, str], investor: dict[str, str]
) -> None:
    created = await api.post("/v1/companies", json=company_body(), headers=admin)
    assert created.status_code == 201, created.text
    company = created.json()
    assert company["transfer_policy"]["rofr_days"] == 45
    assert company["transfer_policy"]["issuer_approval_required"] is True
    assert company["transfer_policy"]["rofr_lapse_is_waiver"] is True
    assert company["transfer_policy"]["transfer_fee_bps"] == 0

    security = await api.post(
        f"/v1/companies/{company['id']}/securities",
        json={
            "class_name": "Series B Preferred",
            "kind": "preferred",
            "last_round_price": {"amount": "12.50", "currency": "USD"},
        },
        headers=admin,
    )
    assert security.status_code == 201, security.text
    assert security.json()["company_id"] == company["id"]
    assert security.json()["last_round_price"] == {"amount": "12.5000", "currency": "USD"}

    funding = await api.post(
        f"/v1/companies/{company['id']}/funding-rounds",
        json={
            "round_name": "Series B",
            "round_date": "2025-03-01",
            "price_per_share": {"amount": "12.50", "currency": "USD"},
            "amount_raised": {"amount": "40000000", "currency": "USD"},
            "post_money_valuation": {"amount": "625000000", "currency": "USD"},
        },
        headers=admin,
    )
    assert funding.status_code == 201, funding.text
    assert funding.json()["price_per_share"] == {"amount": "12.5000", "currency": "USD"}  # as every read shows it
    mixed = await api.post(
        f"/v1/companies/{company['id']}/funding-rounds",
        json={
            "round_name": "Series C",
            "round_date": "2026-03-01",
            "price_per_share": {"amount": "20", "currency": "USD"},
            "amount_raised": {"amount": "50000000", "currency": "USD"},
            "post_money_valuation": {"amount": "900000000", "currency": "EUR"},
        },
        headers=admin,
    )
    assert mixed.status_code == 422, mixed.text

    detail = (await api.get(f"/v1/companies/{company['id']}", headers=investor)).json()
    assert [s["class_name"] for s in detail["securities"]] == ["Series B Preferred"]
    assert detail["funding_rounds"][0]["post_money_valuation"]["amount"] == "625000000.0000"
    read = await api.get(f"/v1/securities/{security.json()['id']}", headers=investor)
    assert read.status_code == 200
    assert read.json()["kind"] == "preferred"


async def test_company_writes_emit_events_to_the_companies_topic(
    api: httpx.AsyncClient, admin: dict[str, str], sessions: SessionFactory
) -> None:
    company = (await api.post("/v1/companies", json=company_body(), headers=admin)).json()
    await api.post(
        f"/v1/companies/{company['id']}/securities", json={"class_name": "C", "kind": "common"}, headers=admin
    )
    await api.patch(f"/v1/companies/{company['id']}", json={"sector": "ai"}, headers=admin)
    async with transaction(sessions) as session:
        rows = (await session.execute(select(OutboxEvent).where(OutboxEvent.key == company["id"]))).scalars().all()
    assert sorted(r.type for r in rows) == [
        "companies.company.created",
        "companies.company.updated",
        "companies.security.created",
    ]
    assert {r.topic for r in rows} == {"pap.companies"}


async def test_non_admin_cannot_create_companies(
    api: httpx.AsyncClient, investor: dict[str, str], token_for: Headers
) -> None:
    response = await api.post("/v1/companies", json=company_body(), headers=investor)
    assert response.status_code == 403
    no_mfa = token_for(uuid.uuid4(), Role.ADMIN, mfa=False)
    response = await api.post("/v1/companies", json=company_body(), headers=no_mfa)
    assert response.status_code == 403
    assert response.json()["type"].endswith("/mfa-required")
    assert (await api.post("/v1/companies", json=company_body())).status_code == 401
    assert (await api.get("/v1/companies")).status_code == 401


async def test_invalid_company_is_a_422_with_field_errors_and_creates_nothing(
    api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    name = f"Invalid {uuid.uuid4().hex}"
    body = company_body(
        name=name,
        fully_diluted_shares=0,
        transfer_policy={"blackout_windows": [{"start_date": "2026-02-01", "end_date": "2026-01-01"}]},
    )
    del body["jurisdiction"]
    response = await api.post("/v1/companies", json=body, headers=admin)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    fields = {e["field"] for e in response.json()["errors"]}
    assert {"jurisdiction", "fully_diluted_shares"} <= fields
    assert any(f.startswith("transfer_policy.blackout_windows") for f in fields)
    listed = await api.get("/v1/companies", params={"q": name}, headers=admin)
    assert listed.json()["items"] == []


async def test_patch_merges_transfer_policy_and_applies_only_sent_fields(
    api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    company = (await api.post("/v1/companies", json=company_body(website="https://acme.example"), headers=admin)).json()
    patched = await api.patch(
        f"/v1/companies/{company['id']}",
        json={"transfer_policy": {"rofr_days": 10, "minimum_transfer_shares": 100}},
        headers=admin,
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["transfer_policy"]["rofr_days"] == 10
    assert body["transfer_policy"]["minimum_transfer_shares"] == 100
    assert body["transfer_policy"]["issuer_approval_required"] is True
    assert body["name"] == company["name"]
    assert body["website"].startswith("https://acme.example")
    missing = await api.patch(f"/v1/companies/{uuid.uuid4()}", json={"sector": "x"}, headers=admin)
    assert missing.status_code == 404


async def test_a_transfer_fee_leaves_room_for_the_platforms_fee(api: httpx.AsyncClient, admin: dict[str, str]) -> None:
    """Both fees come out of the buyer's payment: together they may take all of it, never more (a settlement
    could not pay them out, with the buyer's money already in escrow)."""
    company = (await api.post("/v1/companies", json=company_body(), headers=admin)).json()
    url = f"/v1/companies/{company['id']}"
    too_much = {"transfer_policy": {"transfer_fee_bps": 10_000 - PLATFORM_FEE_BPS + 1}}
    assert (await api.patch(url, json=too_much, headers=admin)).status_code == 422
    created = await api.post(
        "/v1/companies", json=company_body(name=f"Fees {uuid.uuid4().hex}", **too_much), headers=admin
    )
    assert created.status_code == 422
    most = await api.patch(
        url, json={"transfer_policy": {"transfer_fee_bps": 10_000 - PLATFORM_FEE_BPS}}, headers=admin
    )
    assert most.status_code == 200 and most.json()["transfer_policy"]["transfer_fee_bps"] == 9_900


async def test_patch_refuses_null_for_a_required_field_and_changes_nothing(
    api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    company = (await api.post("/v1/companies", json=company_body(website="https://acme.example"), headers=admin)).json()
    url = f"/v1/companies/{company['id']}"
    for body in (
        {"name": None, "sector": "space"},
        {"fully_diluted_shares": None},
        {"transfer_policy": {"issuer_approval_required": None, "rofr_days": 5}},
    ):
        refused = await api.patch(url, json=body, headers=admin)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
    current = (await api.get(url, headers=admin)).json()
    for field in ("name", "sector", "fully_diluted_shares", "transfer_policy"):
        assert current[field] == company[field]

    cleared = await api.patch(
        url, json={"website": None, "transfer_policy": {"minimum_transfer_shares": None}}, headers=admin
    )
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["website"] is None


async def test_values_postgres_cannot_store_are_a_422_not_a_500(api: httpx.AsyncClient, admin: dict[str, str]) -> None:
    name = f"Nul {uuid.uuid4().hex}"
    for body in (
        company_body(name=name, sector="ro\x00bots"),
        company_body(name=name, website="https://" + "a" * 60 + "." + ".".join(["b" * 60] * 8) + ".com"),
    ):
        refused = await api.post("/v1/companies", json=body, headers=admin)
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
    assert (await api.get("/v1/companies", params={"q": name}, headers=admin)).json()["items"] == []
    search = await api.get("/v1/companies", params={"q": "a\x00b"}, headers=admin)
    assert search.status_code == 422, search.text


async def test_list_filters_by_sector_and_name_and_paginates(api: httpx.AsyncClient, admin: dict[str, str]) -> None:
    tag = uuid.uuid4().hex[:10]
    sector = f"sector-{tag}"
    for i in range(3):
        await api.post("/v1/companies", json=company_body(name=f"{tag} Corp {i}", sector=sector), headers=admin)
    await api.post("/v1/companies", json=company_body(name=f"{tag} Other", sector="elsewhere"), headers=admin)

    first = (await api.get("/v1/companies", params={"sector": sector, "limit": 2}, headers=admin)).json()
    assert len(first["items"]) == 2
    assert first["next_cursor"]
    second = (
        await api.get(
            "/v1/companies", params={"sector": sector, "limit": 2, "cursor": first["next_cursor"]}, headers=admin
        )
    ).json()
    assert second["next_cursor"] is None
    names = [c["name"] for c in first["items"] + second["items"]]
    assert names == [f"{tag} Corp {i}" for i in range(3)]

    searched = (await api.get("/v1/companies", params={"q": f"{tag} oth"}, headers=admin)).json()
    assert [c["name"] for c in searched["items"]] == [f"{tag} Other"]
    bad = await api.get("/v1/companies", params={"cursor": "not-a-cursor"}, headers=admin)
    assert bad.status_code == 422


async def test_unknown_company_and_security_are_404(api: httpx.AsyncClient, investor: dict[str, str]) -> None:
    assert (await api.get(f"/v1/companies/{uuid.uuid4()}", headers=investor)).status_code == 404
    assert (await api.get(f"/v1/securities/{uuid.uuid4()}", headers=investor)).status_code == 404


@pytest.mark.parametrize(
    ("policy", "tradable", "quantity", "on_date", "error_type"),
    [
        ({}, False, 100, date(2026, 6, 1), companies.SecurityNotTradable),
        ({"lock_up_until": date(2026, 7, 1)}, True, 100, date(2026, 6, 1), companies.LockUpActive),
        (
            {"blackout_windows": [{"start_date": date(2026, 5, 25), "end_date": date(2026, 6, 5)}]},
            True,
            100,
            date(2026, 6, 1),
            companies.TransferBlackout,
        ),
        ({"minimum_transfer_shares": 500}, True, 100, date(2026, 6, 1), companies.BelowMinimumTransfer),
    ],
)
async def test_transfer_rules_refuse_with_a_specific_problem_type(
    sessions: SessionFactory,
    policy: dict[str, Any],
    tradable: bool,
    quantity: int,
    on_date: date,
    error_type: type[companies.TransferNotAllowed],
) -> None:
    _, security_id = await new_security(sessions, tradable=tradable, **policy)
    async with transaction(sessions) as session:
        with pytest.raises(error_type) as raised:
            await companies.check_transfer_allowed(session, security_id, quantity, on_date)
    assert raised.value.status == 422
    assert raised.value.type != companies.TransferNotAllowed.type


async def test_transfer_allowed_after_lock_up_outside_blackout_above_minimum(sessions: SessionFactory) -> None:
    _, security_id = await new_security(
        sessions,
        lock_up_until=date(2026, 1, 1),
        minimum_transfer_shares=100,
        blackout_windows=[{"start_date": date(2026, 3, 1), "end_date": date(2026, 3, 31)}],
    )
    async with transaction(sessions) as session:
        await companies.check_transfer_allowed(session, security_id, 100, date(2026, 4, 1))
        policy = await companies.transfer_policy_for_security(session, security_id)
    assert policy.minimum_transfer_shares == 100
    assert policy.rofr_days == 30
