"""A deal end to end over HTTP on the real stack: the API, the worker, the relay, the consumers."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from pap.db import SessionFactory
from pap.settings import Settings
from services import holdings
from services.identity.permissions import Role
from tests.deal_support import Parties, TokenFor, deal_request, parties
from tests.factories import register_and_login
from tests.histories.record import save_if_recording
from tests.support import eventually, read_topic


@pytest.fixture
async def people(api: httpx.AsyncClient, sessions: SessionFactory, token_for: TokenFor) -> Parties:
    return await parties(api, sessions, token_for, rofr_days=30, issuer_approval_required=False, transfer_fee_bps=50)


async def deal_at(api: httpx.AsyncClient, deal_id: str, headers: dict[str, str], stage: str) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        return (await api.get(f"/v1/deals/{deal_id}", headers=headers)).json()  # type: ignore[no-any-return]

    return await eventually(read, lambda d: d.get("stage") == stage, timeout=120, what=f"deal {stage}")


async def sign_pending(api: httpx.AsyncClient, deal_id: str, people: Parties, kinds: set[str]) -> None:
    """Each signer signs the documents of `kinds`, in signing order (seller before buyer)."""
    documents = (await api.get(f"/v1/deals/{deal_id}/documents", headers=people.manager)).json()
    for document in (d for d in documents if d["kind"] in kinds):
        for signer in sorted(document["signers"], key=lambda s: s["role"] != "seller"):
            user = people.seller if signer["role"] == "seller" else people.buyer
            response = await api.post(
                f"/v1/documents/{document['id']}/sign",
                json={"signature_name": "Signer", "consent": True},
                headers=user.headers,
            )
            assert response.status_code == 200, response.text


async def test_brokered_deal_closes_with_money_and_shares_moved_once(
    api: httpx.AsyncClient, people: Parties, settings: Settings, temporal_client: Client
) -> None:
    created = await api.post(
        "/v1/deals",
        json=deal_request(people, quantity=100, price="20.00"),
        headers=people.manager,
    )
    assert created.status_code == 201, created.text
    deal = created.json()
    deal_id = deal["id"]
    assert deal["workflow_id"] == f"deal-{deal_id}"

    await deal_at(api, deal_id, people.manager, "awaiting_issuer")
    await sign_pending(api, deal_id, people, {"stock_transfer_notice"})
    decision = await api.post(f"/v1/deals/{deal_id}/issuer-decision", json={"decision": "waive"}, headers=people.issuer)
    assert decision.status_code == 200, decision.text

    await deal_at(api, deal_id, people.manager, "awaiting_signatures")
    await sign_pending(api, deal_id, people, {"stock_transfer_agreement", "joinder"})

    await deal_at(api, deal_id, people.buyer.headers, "awaiting_funding")
    instructions = (await api.post(f"/v1/deals/{deal_id}/funding", headers=people.buyer.headers)).json()
    assert instructions["amount"] == {"amount": "2000.0000", "currency": "USD"}
    settle = await api.post(f"/v1/sandbox/payments/{instructions['payment_id']}/settle", json={})
    assert settle.status_code == 202

    await deal_at(api, deal_id, people.issuer, "settling")
    confirmed = await api.post(f"/v1/deals/{deal_id}/settlement/confirm", headers=people.issuer)
    assert confirmed.status_code == 200, confirmed.text
    closed = await deal_at(api, deal_id, people.seller.headers, "closed")

    stages = [entry["stage"] for entry in closed["timeline"]]
    assert stages[0] == "created" and stages[-1] == "closed"
    assert closed["payments"] == []  # the buyer's payment is the buyer's: the seller sees the stage, not it
    for viewer in (people.buyer.headers, people.issuer, people.manager):
        seen = (await api.get(f"/v1/deals/{deal_id}", headers=viewer)).json()["payments"]
        assert [(p["id"], p["status"]) for p in seen] == [(instructions["payment_id"], "funded")]
    assert {d["status"] for d in closed["documents"] if d["kind"] != "issuer_consent"} == {"signed"}

    buyer_positions = (await api.get("/v1/holdings", headers=people.buyer.headers)).json()["items"]
    assert [(h["quantity"], h["status"]) for h in buyer_positions] == [(100, "verified")]
    seller_positions = (await api.get("/v1/holdings", headers=people.seller.headers)).json()["items"]
    assert sum(h["quantity"] for h in seller_positions) == 900

    reconciliation = (await api.get("/v1/admin/reconciliation", headers=people.compliance)).json()
    assert reconciliation["ledger_balanced"] is True
    assert reconciliation["shares_conserved"] is True
    assert deal_id not in {e["deal_id"] for e in reconciliation["open_escrow"]}

    await save_if_recording(temporal_client, f"deal-{deal_id}", "DealExecution--brokered-closed")

    async def deal_events() -> list[str]:
        events = await read_topic(settings.require("kafka_bootstrap"), "pap.deals")
        return [e.type for key, e in events if key == deal_id.encode()]

    mine = await eventually(deal_events, lambda types: "deals.closed" in types, what="deals.closed on Kafka")
    assert mine[0] == "deals.created" and mine[-1] == "deals.closed"


async def drive_to_closed(api: httpx.AsyncClient, deal_id: str, people: Parties) -> dict[str, Any]:
    """Every human step of a deal, over HTTP, as the participants would do it."""
    await deal_at(api, deal_id, people.manager, "awaiting_issuer")
    await sign_pending(api, deal_id, people, {"stock_transfer_notice"})
    decision = await api.post(f"/v1/deals/{deal_id}/issuer-decision", json={"decision": "waive"}, headers=people.issuer)
    assert decision.status_code == 200, decision.text
    await deal_at(api, deal_id, people.manager, "awaiting_signatures")
    await sign_pending(api, deal_id, people, {"stock_transfer_agreement", "joinder"})
    await deal_at(api, deal_id, people.buyer.headers, "awaiting_funding")
    instructions = (await api.post(f"/v1/deals/{deal_id}/funding", headers=people.buyer.headers)).json()
    assert (await api.post(f"/v1/sandbox/payments/{instructions['payment_id']}/settle", json={})).status_code == 202
    await deal_at(api, deal_id, people.issuer, "settling")
    confirmed = await api.post(f"/v1/deals/{deal_id}/settlement/confirm", headers=people.issuer)
    assert confirmed.status_code == 200, confirmed.text
    return await deal_at(api, deal_id, people.seller.headers, "closed")


async def test_crossing_orders_become_a_deal_that_settles_the_trade(
    api: httpx.AsyncClient, people: Parties, settings: Settings
) -> None:
    order = {"security_id": str(people.security_id), "quantity": 40, "time_in_force": "gtc"}
    price = {"amount": "15.00", "currency": "USD"}
    sell = await api.post(
        "/v1/orders", json=order | {"side": "sell", "limit_price": price}, headers=people.seller.headers
    )
    assert sell.status_code == 201, sell.text
    buy = await api.post("/v1/orders", json=order | {"side": "buy", "limit_price": price}, headers=people.buyer.headers)
    assert buy.status_code == 201, buy.text

    found = (await api.get(f"/v1/deals?order_id={sell.json()['id']}", headers=people.seller.headers)).json()["items"]
    assert len(found) == 1
    deal = found[0]
    assert (deal["source"], deal["quantity"], deal["buyer_id"]) == ("matched", 40, str(people.buyer.id))
    assert deal["workflow_id"] == f"deal-{deal['id']}"

    closed = await drive_to_closed(api, deal["id"], people)
    assert closed["stage"] == "closed"
    assert (await api.get(f"/v1/orders/{sell.json()['id']}", headers=people.seller.headers)).json()[
        "status"
    ] == "filled"
    buyer_positions = (await api.get("/v1/holdings", headers=people.buyer.headers)).json()["items"]
    assert sum(h["quantity"] for h in buyer_positions) == 40
    seller_positions = (await api.get("/v1/holdings", headers=people.seller.headers)).json()["items"]
    assert sum(h["quantity"] for h in seller_positions) == 960
    assert sum(h["reserved_quantity"] for h in seller_positions) == 0
    reconciliation = (await api.get("/v1/admin/reconciliation", headers=people.compliance)).json()
    assert reconciliation["ledger_balanced"] and reconciliation["shares_conserved"]

    async def notifications(headers: dict[str, str]) -> list[dict[str, Any]]:
        return (await api.get("/v1/notifications", headers=headers)).json()["items"]  # type: ignore[no-any-return]

    for user in (people.seller, people.buyer):
        items = await eventually(
            lambda user=user: notifications(user.headers),  # type: ignore[misc]
            lambda n: any("closed" in (i["title"] + i["body"]).lower() for i in n),
            timeout=60,
            what="deal closed notification",
        )
        assert items
    prices = await eventually(
        lambda: api.get(f"/v1/securities/{people.security_id}/prices?interval=1d", headers=people.buyer.headers),
        lambda r: r.status_code == 200 and bool(r.json()),
        timeout=60,
        what="the closed trade in the price history",
    )
    assert prices.json()[-1]["close"].startswith("15")


async def test_strangers_see_neither_the_deal_nor_its_documents(
    api: httpx.AsyncClient, people: Parties, token_for: TokenFor
) -> None:
    deal = (
        await api.post(
            "/v1/deals",
            json=deal_request(people, quantity=5, price="10"),
            headers=people.manager,
        )
    ).json()
    await deal_at(api, deal["id"], people.manager, "awaiting_issuer")
    stranger = await register_and_login(api)
    assert (await api.get(f"/v1/deals/{deal['id']}", headers=stranger.headers)).status_code == 404
    assert (await api.get(f"/v1/deals/{deal['id']}/documents", headers=stranger.headers)).status_code == 404
    documents = (await api.get(f"/v1/deals/{deal['id']}/documents", headers=people.seller.headers)).json()
    content = await api.get(f"/v1/documents/{documents[0]['id']}/content", headers=stranger.headers)
    assert content.status_code == 404
    other_issuer = token_for(uuid.uuid4(), Role.ISSUER, company_id=uuid.uuid4())
    assert (await api.get(f"/v1/deals/{deal['id']}", headers=other_issuer)).status_code == 404
    listed = (await api.get("/v1/deals", headers=stranger.headers)).json()
    assert deal["id"] not in {d["id"] for d in listed["items"]}
    cancel = await api.post(f"/v1/deals/{deal['id']}/cancel", json={"reason": "x"}, headers=people.seller.headers)
    assert cancel.status_code == 403


async def test_bad_deal_requests_are_problems_with_no_side_effects(api: httpx.AsyncClient, people: Parties) -> None:
    base = deal_request(people, quantity=100, price="20.00")
    too_many = await api.post("/v1/deals", json=base | {"quantity": 5_000}, headers=people.manager)
    assert too_many.status_code == 422
    assert too_many.json()["type"].endswith("/insufficient-shares")
    negative = await api.post(
        "/v1/deals", json=base | {"price": {"amount": "-1", "currency": "USD"}}, headers=people.manager
    )
    assert negative.status_code == 422
    unknown = await api.post("/v1/deals", json=base | {"buyer_id": str(uuid.uuid4())}, headers=people.manager)
    assert unknown.status_code == 422
    same = await api.post("/v1/deals", json=base | {"buyer_id": str(people.seller.id)}, headers=people.manager)
    assert same.status_code == 422
    positions = (await api.get("/v1/holdings", headers=people.seller.headers)).json()["items"]
    assert sum(h["reserved_quantity"] for h in positions) == 0


async def test_a_brokered_deal_worth_more_than_the_ledger_holds_is_refused_and_reserves_nothing(
    api: httpx.AsyncClient, sessions: SessionFactory, token_for: TokenFor
) -> None:
    p = await parties(api, sessions, token_for)
    refused = await api.post(
        "/v1/deals", json=deal_request(p, quantity=1_000, price="10000000001.00"), headers=p.manager
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "quantity"
    async with sessions() as session:
        assert await holdings.available_shares(session, p.seller.id, p.security_id) == 1_000
