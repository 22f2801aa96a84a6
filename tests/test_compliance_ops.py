"""Compliance and ops: account freezes, review queues, exports, stuck deals, authorization, the CLI."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from temporalio.client import Client
from typer.testing import CliRunner

from pap.cli import app as cli_app
from pap.db import SessionFactory, transaction
from services import admin
from services.identity.permissions import Role
from tests.deal_support import Parties, TokenFor, brokered_deal, deal_request, parties
from tests.marketplace_support import order_body, place, reserved_outstanding
from tests.support import eventually, waiting_for_a_lock


@pytest.fixture
async def people(api: httpx.AsyncClient, sessions: SessionFactory, token_for: TokenFor) -> Parties:
    return await parties(api, sessions, token_for, rofr_days=30)


async def audit_actions(api: httpx.AsyncClient, headers: dict[str, str], entity_id: str) -> list[str]:
    page = await api.get("/v1/admin/audit", params={"entity_id": entity_id}, headers=headers)
    assert page.status_code == 200, page.text
    return [e["action"] for e in page.json()["items"]]


async def test_frozen_account_cannot_trade_and_loses_its_sessions(
    api: httpx.AsyncClient, people: Parties, token_for: TokenFor
) -> None:
    seller = people.seller
    assert (await api.get("/v1/me", headers=seller.headers)).status_code == 200
    frozen = await api.post(
        f"/v1/compliance/users/{seller.id}/freeze", json={"reason": "sanctions hit"}, headers=people.compliance
    )
    assert frozen.status_code == 200, frozen.text
    assert frozen.json()["frozen"] is True and frozen.json()["sessions_revoked"] >= 1

    old_session = await api.get("/v1/me", headers=seller.headers)
    assert old_session.status_code == 401
    refreshed = await api.post("/v1/auth/refresh", json={"refresh_token": seller.refresh_token})
    assert refreshed.status_code == 401

    as_seller = token_for(seller.id, Role.INVESTOR)
    order = await api.post("/v1/orders", json=order_body(people.security_id, "sell", 10, "10.00"), headers=as_seller)
    assert order.status_code == 403 and order.json()["type"].endswith("account-frozen"), order.text
    deal = await api.post("/v1/deals", json=deal_request(people, quantity=10), headers=people.manager)
    assert deal.status_code == 403 and deal.json()["type"].endswith("account-frozen"), deal.text

    lifted = await api.post(f"/v1/compliance/users/{seller.id}/unfreeze", json={}, headers=people.compliance)
    assert lifted.status_code == 200 and lifted.json()["frozen"] is False
    order = await api.post("/v1/orders", json=order_body(people.security_id, "sell", 10, "99.00"), headers=as_seller)
    assert order.status_code == 201, order.text
    actions = await audit_actions(api, people.compliance, str(seller.id))
    assert "compliance.account_frozen" in actions and "compliance.account_unfrozen" in actions


async def test_freezing_cancels_the_accounts_resting_orders_and_releases_their_shares(
    api: httpx.AsyncClient, people: Parties, sessions: SessionFactory, temporal_client: Client, token_for: TokenFor
) -> None:
    as_seller = token_for(people.seller.id, Role.INVESTOR)
    first = await place(api, as_seller, order_body(people.security_id, "sell", 10, "99.00"))
    second = await place(api, as_seller, order_body(people.security_id, "sell", 15, "98.00"))
    assert await reserved_outstanding(sessions, people.seller.id, people.security_id) == 25

    frozen = await api.post(
        f"/v1/compliance/users/{people.seller.id}/freeze", json={"reason": "sanctions hit"}, headers=people.compliance
    )
    assert frozen.status_code == 200, frozen.text
    assert frozen.json()["orders_cancelled"] == 2

    for order in (first, second):
        read = await api.get(f"/v1/orders/{order['id']}", headers=as_seller)
        assert read.json()["status"] == "cancelled", read.text
        handle = temporal_client.get_workflow_handle(order["workflow_id"])
        assert await handle.result() == "cancelled"
    assert await reserved_outstanding(sessions, people.seller.id, people.security_id) == 0
    again = await api.post(
        f"/v1/compliance/users/{people.seller.id}/freeze", json={"reason": "sanctions hit"}, headers=people.compliance
    )
    assert again.status_code == 200 and again.json()["orders_cancelled"] == 0


async def test_a_freeze_waits_for_an_order_already_past_its_frozen_check(
    api: httpx.AsyncClient, people: Parties, sessions: SessionFactory
) -> None:
    """An order that passed the frozen check commits before the freeze reads the live orders to cancel them,
    so it cannot stay on the book of a frozen account."""
    async with transaction(sessions) as placing:
        await admin.ensure_not_frozen(placing, people.seller.id)  # as `place_order` does, then saves the order
        freeze = asyncio.create_task(
            api.post(
                f"/v1/compliance/users/{people.seller.id}/freeze", json={"reason": "race"}, headers=people.compliance
            )
        )
        await eventually(
            lambda: waiting_for_a_lock(sessions, "%pg_advisory_xact_lock(hashtextextended%"),
            what="the freeze to wait for the placement",
        )
        assert not freeze.done()
    assert (await freeze).status_code == 200


async def test_frozen_buyer_cannot_start_a_deal(api: httpx.AsyncClient, people: Parties) -> None:
    frozen = await api.post(
        f"/v1/compliance/users/{people.buyer.id}/freeze", json={"reason": "fraud review"}, headers=people.compliance
    )
    assert frozen.status_code == 200
    deal = await api.post("/v1/deals", json=deal_request(people, quantity=10), headers=people.manager)
    assert deal.status_code == 403 and deal.json()["type"].endswith("account-frozen")


async def test_freezing_a_party_puts_their_open_deals_on_hold(
    api: httpx.AsyncClient, people: Parties, temporal_client: Client
) -> None:
    created = await api.post("/v1/deals", json=deal_request(people, quantity=10), headers=people.manager)
    assert created.status_code == 201, created.text
    deal_id = created.json()["id"]

    async def stage() -> str:
        return str((await api.get(f"/v1/deals/{deal_id}", headers=people.manager)).json()["stage"])

    await eventually(stage, lambda s: s == "awaiting_issuer", timeout=60, what="the deal under way")
    frozen = await api.post(
        f"/v1/compliance/users/{people.seller.id}/freeze", json={"reason": "sanctions hit"}, headers=people.compliance
    )
    assert frozen.status_code == 200, frozen.text
    assert frozen.json()["deals_held"] == 1
    assert (await api.get(f"/v1/deals/{deal_id}", headers=people.manager)).json()["on_hold"] is True

    async def workflow_on_hold() -> bool:
        state = await temporal_client.get_workflow_handle(f"deal-{deal_id}").query("state")
        return bool(state["on_hold"])

    await eventually(workflow_on_hold, what="the workflow told to hold")


async def test_review_queue_shows_pending_lots_with_age_and_overdue(
    api: httpx.AsyncClient, people: Parties, sessions: SessionFactory, token_for: TokenFor
) -> None:
    owner = token_for(uuid.uuid4(), Role.INVESTOR)
    fresh = await api.post("/v1/holdings", json={"security_id": str(people.security_id), "quantity": 5}, headers=owner)
    old = await api.post("/v1/holdings", json={"security_id": str(people.security_id), "quantity": 6}, headers=owner)
    assert fresh.status_code == 201 and old.status_code == 201
    async with transaction(sessions) as session:
        await session.execute(
            text("UPDATE holdings.holding SET created_at = now() - interval '4 days' WHERE id = :id"),
            {"id": old.json()["id"]},
        )
    queues = await api.get("/v1/compliance/queues", headers=people.compliance)
    assert queues.status_code == 200, queues.text
    body = queues.json()
    assert set(body) == {"kyc_escalations", "accreditations", "holding_verifications"}
    lots = {item["id"]: item for item in body["holding_verifications"]}
    assert lots[fresh.json()["id"]]["overdue"] is False
    assert lots[fresh.json()["id"]]["sla_seconds"] == 72 * 3600
    assert lots[old.json()["id"]]["overdue"] is True
    assert lots[old.json()["id"]]["age_seconds"] >= 4 * 24 * 3600 - 60


async def test_trade_export_has_rows_in_range_and_none_outside(
    api: httpx.AsyncClient, people: Parties, token_for: TokenFor
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    sell = await place(api, people.seller.headers, order_body(people.security_id, "sell", 7, "11.00"))
    buy = await place(api, people.buyer.headers, order_body(people.security_id, "buy", 7, "11.00"))
    after = datetime.now(UTC) + timedelta(seconds=5)
    params = {"from": before.isoformat(), "to": after.isoformat()}

    async def rows() -> list[dict[str, Any]]:
        answer = await api.get(
            "/v1/compliance/exports/trades", params=params | {"format": "json"}, headers=people.compliance
        )
        assert answer.status_code == 200, answer.text
        return [r for r in answer.json() if r["security_id"] == str(people.security_id)]

    mine = await eventually(rows, lambda r: len(r) == 1, timeout=30, what="trade exported")
    assert mine[0]["quantity"] == 7 and mine[0]["price_amount"].startswith("11")
    assert {mine[0]["buyer_id"], mine[0]["seller_id"]} == {str(people.buyer.id), str(people.seller.id)}
    assert sell["id"] and buy["id"]

    as_csv = await api.get(
        "/v1/compliance/exports/trades", params=params | {"format": "csv"}, headers=people.compliance
    )
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    records = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [r["trade_id"] for r in records if r["security_id"] == str(people.security_id)] == [mine[0]["trade_id"]]

    later = {"from": after.isoformat(), "format": "csv"}
    empty = await api.get("/v1/compliance/exports/trades", params=later, headers=people.compliance)
    lines = list(csv.reader(io.StringIO(empty.text)))
    assert lines[0][0] == "trade_id"
    assert all(line[0] != mine[0]["trade_id"] for line in lines[1:])

    deals_export = await api.get(
        "/v1/compliance/exports/deals", params=params | {"format": "json"}, headers=people.compliance
    )
    exported = {d["deal_id"]: d for d in deals_export.json()}
    assert mine[0]["deal_id"] in exported and isinstance(exported[mine[0]["deal_id"]]["timeline"], list)


async def test_stuck_deals_lists_a_deal_older_than_its_stage_sla(
    api: httpx.AsyncClient, people: Parties, sessions: SessionFactory, token_for: TokenFor
) -> None:
    stale = await brokered_deal(sessions, people, quantity=3)
    fresh = await brokered_deal(sessions, people, quantity=4)
    async with transaction(sessions) as session:
        await session.execute(
            text("UPDATE deals.deal SET updated_at = now() - interval '2 hours' WHERE id = :id"),
            {"id": stale.deal_id},
        )
    ops = token_for(uuid.uuid4(), Role.ADMIN)
    answer = await api.get("/v1/ops/deals/stuck", headers=ops)
    assert answer.status_code == 200, answer.text
    stuck = {s["deal_id"]: s for s in answer.json()["items"]}
    assert str(stale.deal_id) in stuck and str(fresh.deal_id) not in stuck
    assert stuck[str(stale.deal_id)]["stage"] == "created" and stuck[str(stale.deal_id)]["sla_seconds"] == 3600

    runner = CliRunner()
    token = ops["Authorization"].removeprefix("Bearer ")
    result = runner.invoke(cli_app, ["ops", "stuck", "--api", str(api.base_url), "--token", token])
    assert result.exit_code == 0, result.output
    assert str(stale.deal_id) in result.output
    listed = runner.invoke(
        cli_app,
        ["deals", "list", "--stage", "created", "--api", str(api.base_url)],
        env={"PAP_TOKEN": people.manager["Authorization"].removeprefix("Bearer ")},
    )
    assert listed.exit_code == 0, listed.output
    assert str(fresh.deal_id) in listed.output
    denied = runner.invoke(
        cli_app, ["ops", "stuck", "--api", str(api.base_url), "--token", people.seller.headers["Authorization"][7:]]
    )
    assert denied.exit_code == 1


async def test_ops_and_compliance_endpoints_refuse_investors_and_missing_mfa(
    api: httpx.AsyncClient, token_for: TokenFor
) -> None:
    investor = token_for(uuid.uuid4(), Role.INVESTOR)
    no_mfa = token_for(uuid.uuid4(), Role.COMPLIANCE, mfa=False)
    someone = uuid.uuid4()
    calls = [
        ("GET", "/v1/ops/deals/stuck", None),
        ("GET", "/v1/compliance/queues", None),
        ("GET", "/v1/compliance/exports/trades", None),
        ("POST", f"/v1/compliance/users/{someone}/freeze", {"reason": "x"}),
        ("POST", f"/v1/compliance/deals/{someone}/hold", {"reason": "x"}),
        ("POST", f"/v1/ops/deals/{someone}/cancel", {"reason": "x"}),
        ("POST", f"/v1/ops/deals/{someone}/retry", None),
        ("GET", f"/v1/ops/deals/{someone}/history", None),
    ]
    for method, path, body in calls:
        refused = await api.request(method, path, json=body, headers=investor)
        assert refused.status_code == 403, (path, refused.text)
        needs_mfa = await api.request(method, path, json=body, headers=no_mfa)
        assert needs_mfa.status_code == 403 and needs_mfa.json()["type"].endswith("mfa-required"), path
