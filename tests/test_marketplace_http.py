"""Orders end to end through HTTP: listing, crossing bid, trade, events on Kafka, the book, cancel and amend."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from pap.db import SessionFactory
from pap.settings import Settings
from services.identity.permissions import Role
from temporal.search_attributes import ORDER_STATUS, SECURITY_ID, SIDE
from tests.factories import TestUser, make_verified_buyer
from tests.histories.record import save_if_recording
from tests.market_support import new_security
from tests.marketplace_support import (
    Headers,
    available,
    get_order,
    order_body,
    place,
    reserved_outstanding,
    seller_with_shares,
    trades_of_security,
)
from tests.support import eventually, read_topic


@pytest.fixture(scope="module")
async def buyer(api: httpx.AsyncClient, token_for: Headers) -> TestUser:
    return await make_verified_buyer(api, compliance_headers=token_for(uuid.uuid4(), Role.COMPLIANCE))


async def test_crossing_bid_fills_the_listing_records_the_trade_and_publishes_events(
    api: httpx.AsyncClient,
    token_for: Headers,
    sessions: SessionFactory,
    settings: Settings,
    buyer: TestUser,
    temporal_client: Client,
) -> None:
    _, security_id = await new_security(sessions)
    seller_id, seller = await seller_with_shares(api, token_for, security_id, 500)
    sell = await place(api, seller, order_body(security_id, "sell", 100, "10.00"))
    assert sell["status"] == "open" and sell["workflow_id"] == f"order-{sell['id']}"
    described = await temporal_client.get_workflow_handle(sell["workflow_id"]).describe()
    assert described.typed_search_attributes.get(ORDER_STATUS) == "open"
    assert described.typed_search_attributes.get(SECURITY_ID) == str(security_id)
    assert described.typed_search_attributes.get(SIDE) == "sell"
    assert await available(api, seller, security_id) == 400

    book = (await api.get(f"/v1/securities/{security_id}/book", headers=buyer.headers)).json()
    assert book["asks"] == [{"price": {"amount": "10.0000", "currency": "USD"}, "quantity": 100}] and book["bids"] == []

    buy = await place(api, buyer.headers, order_body(security_id, "buy", 100, "11.00"))
    assert buy["status"] == "filled" and buy["filled_quantity"] == 100
    assert (await get_order(api, seller, sell["id"]))["status"] == "filled"

    trades = await trades_of_security(sessions, security_id)
    assert len(trades) == 1
    trade = trades[0]
    assert (trade.buyer_id, trade.seller_id, trade.quantity) == (buyer.id, seller_id, 100)
    assert str(trade.price_amount) == "10.0000"  # the resting order's price
    assert trade.deal_id == trade.id
    # Filled but unsettled: the seller's shares stay reserved for the deal.
    assert await reserved_outstanding(sessions, seller_id, security_id) == 100

    book = (await api.get(f"/v1/securities/{security_id}/book", headers=buyer.headers)).json()
    assert book == {"security_id": str(security_id), "bids": [], "asks": []}

    async def events() -> list[Any]:
        found = await read_topic(settings.require("kafka_bootstrap"), "pap.marketplace")
        return [(key, e) for key, e in found if e.data.get("security_id") == str(security_id)]

    published = await eventually(
        events,
        lambda es: (
            {"marketplace.order.created", "marketplace.trade.matched", "marketplace.book.changed"}
            <= {e.type for _, e in es}
        ),
        timeout=30,
        what="marketplace events on Kafka",
    )
    assert all(key == str(security_id).encode() for key, _ in published)
    matched = next(e for _, e in published if e.type == "marketplace.trade.matched")
    assert matched.data["trade_id"] == str(trade.id) and matched.data["price"] == {
        "amount": "10.0000",
        "currency": "USD",
    }
    created = [e.data for _, e in published if e.type == "marketplace.order.created"]
    assert {c["order_id"] for c in created} == {sell["id"], buy["id"]}
    expected = {"order_id", "user_id", "security_id", "company_id", "side", "quantity", "filled_quantity"}
    assert expected | {"remaining_quantity", "limit_price", "status", "time_in_force", "expires_at"} <= set(created[0])
    last_book = [e for _, e in published if e.type == "marketplace.book.changed"][-1]
    assert last_book.data["asks"] == [] and last_book.data["bids"] == []

    # The resting sell order's workflow heard of its fill and finished as filled.
    handle = temporal_client.get_workflow_handle(sell["workflow_id"])
    assert await asyncio.wait_for(handle.result(), timeout=30) == "filled"
    assert (await handle.describe()).typed_search_attributes.get(ORDER_STATUS) == "filled"
    await save_if_recording(temporal_client, sell["workflow_id"], "OrderLifecycle--filled-by-match")


async def test_partial_fill_leaves_the_remainder_on_the_book_and_listings_show_it(
    api: httpx.AsyncClient, token_for: Headers, sessions: SessionFactory, buyer: TestUser
) -> None:
    company_id, security_id = await new_security(sessions)
    _, seller = await seller_with_shares(api, token_for, security_id, 300)
    sell = await place(api, seller, order_body(security_id, "sell", 300, "20.00"))
    buy = await place(api, buyer.headers, order_body(security_id, "buy", 120, "20.00"))
    assert buy["status"] == "filled"
    assert (await get_order(api, seller, sell["id"]))["status"] == "partially_filled"
    book = (await api.get(f"/v1/securities/{security_id}/book", headers=seller)).json()
    assert book["asks"] == [{"price": {"amount": "20.0000", "currency": "USD"}, "quantity": 180}]

    listings = (await api.get("/v1/listings", params={"company_id": str(company_id)}, headers=seller)).json()
    assert len(listings["items"]) == 1
    listing = listings["items"][0]
    assert listing["security_id"] == str(security_id) and listing["quantity_available"] == 180
    assert listing["best_ask"] == {"amount": "20.0000", "currency": "USD"} and listing["company_name"].startswith("Co ")


async def test_bid_below_the_ask_does_not_trade(
    api: httpx.AsyncClient, token_for: Headers, sessions: SessionFactory, buyer: TestUser
) -> None:
    _, security_id = await new_security(sessions)
    _, seller = await seller_with_shares(api, token_for, security_id, 100)
    await place(api, seller, order_body(security_id, "sell", 100, "10.00"))
    buy = await place(api, buyer.headers, order_body(security_id, "buy", 100, "9.99"))
    assert buy["status"] == "open"
    assert await trades_of_security(sessions, security_id) == []
    book = (await api.get(f"/v1/securities/{security_id}/book", headers=seller)).json()
    assert [level["quantity"] for level in book["bids"]] == [100] and [lv["quantity"] for lv in book["asks"]] == [100]


async def test_owner_cancels_and_the_reservation_is_released(
    api: httpx.AsyncClient, token_for: Headers, sessions: SessionFactory
) -> None:
    _, security_id = await new_security(sessions)
    seller_id, seller = await seller_with_shares(api, token_for, security_id, 100)
    sell = await place(api, seller, order_body(security_id, "sell", 60, "10.00"))
    stranger = token_for(uuid.uuid4(), Role.INVESTOR)
    assert (await api.post(f"/v1/orders/{sell['id']}/cancel", headers=stranger)).status_code == 404
    assert (await api.get(f"/v1/orders/{sell['id']}", headers=stranger)).status_code == 404

    cancelled = await api.post(f"/v1/orders/{sell['id']}/cancel", headers=seller)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert await available(api, seller, security_id) == 100
    assert await reserved_outstanding(sessions, seller_id, security_id) == 0
    again = await api.post(f"/v1/orders/{sell['id']}/cancel", headers=seller)
    assert again.status_code == 409 and again.json()["type"].endswith("order-not-cancellable")


async def test_amend_rules_filled_is_409_below_filled_is_422_and_growth_reserves_more(
    api: httpx.AsyncClient, token_for: Headers, sessions: SessionFactory, buyer: TestUser
) -> None:
    _, security_id = await new_security(sessions)
    seller_id, seller = await seller_with_shares(api, token_for, security_id, 400)
    sell = await place(api, seller, order_body(security_id, "sell", 100, "10.00"))
    await place(api, buyer.headers, order_body(security_id, "buy", 40, "10.00"))
    assert (await get_order(api, seller, sell["id"]))["filled_quantity"] == 40

    below = await api.patch(f"/v1/orders/{sell['id']}", json={"quantity": 30}, headers=seller)
    assert below.status_code == 422 and below.json()["type"].endswith("quantity-below-filled"), below.text
    other = await api.patch(
        f"/v1/orders/{sell['id']}", json={"quantity": 200}, headers=token_for(uuid.uuid4(), Role.INVESTOR)
    )
    assert other.status_code == 404

    grown = await api.patch(f"/v1/orders/{sell['id']}", json={"quantity": 250}, headers=seller)
    assert grown.status_code == 200, grown.text
    assert grown.json()["quantity"] == 250 and grown.json()["remaining_quantity"] == 210
    assert await reserved_outstanding(sessions, seller_id, security_id) == 250
    assert await available(api, seller, security_id) == 150
    too_many = await api.patch(f"/v1/orders/{sell['id']}", json={"quantity": 500}, headers=seller)
    assert too_many.status_code == 422 and too_many.json()["type"].endswith("insufficient-shares"), too_many.text
    assert await reserved_outstanding(sessions, seller_id, security_id) == 250

    # A new price crosses the resting bid placed below it.
    bid = await place(api, buyer.headers, order_body(security_id, "buy", 210, "9.50"))
    assert bid["status"] == "open"
    repriced = await api.patch(
        f"/v1/orders/{sell['id']}", json={"limit_price": {"amount": "9.50", "currency": "USD"}}, headers=seller
    )
    assert repriced.status_code == 200, repriced.text
    assert repriced.json()["status"] == "filled"
    await eventually(lambda: get_order(api, buyer.headers, bid["id"]), lambda o: o["status"] == "filled")
    filled = await api.patch(f"/v1/orders/{sell['id']}", json={"quantity": 300}, headers=seller)
    assert filled.status_code == 409 and filled.json()["type"].endswith("order-not-amendable")
    cancel_filled = await api.post(f"/v1/orders/{sell['id']}/cancel", headers=seller)
    assert cancel_filled.status_code == 409


async def test_deal_manager_sees_all_orders_investors_only_their_own(
    api: httpx.AsyncClient, token_for: Headers, sessions: SessionFactory
) -> None:
    _, security_id = await new_security(sessions)
    _, seller = await seller_with_shares(api, token_for, security_id, 10)
    sell = await place(api, seller, order_body(security_id, "sell", 10, "5.00"))
    manager = token_for(uuid.uuid4(), Role.DEAL_MANAGER)
    assert (await api.get(f"/v1/orders/{sell['id']}", headers=manager)).status_code == 200
    page = (await api.get("/v1/orders", params={"security_id": str(security_id)}, headers=manager)).json()
    assert [o["id"] for o in page["items"]] == [sell["id"]]
    mine = (await api.get("/v1/orders", params={"status": "open"}, headers=seller)).json()
    assert [o["id"] for o in mine["items"]] == [sell["id"]]
    other = (await api.get("/v1/orders", headers=token_for(uuid.uuid4(), Role.INVESTOR))).json()
    assert other["items"] == []


async def test_gtd_order_is_accepted_with_a_future_expiry(
    api: httpx.AsyncClient, token_for: Headers, sessions: SessionFactory
) -> None:
    _, security_id = await new_security(sessions)
    _, seller = await seller_with_shares(api, token_for, security_id, 10)
    expires = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    sell = await place(
        api, seller, order_body(security_id, "sell", 10, "5.00", time_in_force="gtd", expires_at=expires)
    )
    assert sell["time_in_force"] == "gtd" and sell["expires_at"] is not None
