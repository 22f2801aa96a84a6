"""Orders at the edges: expiry before its timer ran, the company's transfer rules at match time,
an order whose workflow ops terminated, Temporal failing after the order committed, a deal's
fill given back, and values the ledger could not hold."""

from __future__ import annotations

import functools
import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, cast

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlmodel import col, select
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import ActivityEnvironment

from activities.marketplace import MarketplaceActivities
from api.routers.marketplace import place_order as place_order_route
from models.base import Money, utcnow
from models.marketplace import AmendOrderInput, Order, OrderCreate, Side, TimeInForce
from models.profiles import Accreditation
from pap.db import SessionFactory, transaction
from pap.settings import Settings
from services import deals, holdings, marketplace, profiles
from services.identity.permissions import Role
from services.identity.tokens import Principal
from services.marketplace.common import on_the_book
from tests.factories import TestUser, make_verified_buyer
from tests.market_support import new_security, verified_lot
from tests.marketplace_support import (
    Headers,
    get_order,
    marketplace_events_of,
    order_body,
    orders_of,
    place,
    reserved_outstanding,
    seller_with_shares,
    trades_of_security,
)
from tests.support import eventually


@pytest.fixture(scope="module")
async def buyer(api: httpx.AsyncClient, token_for: Headers) -> TestUser:
    return await make_verified_buyer(api, compliance_headers=token_for(uuid.uuid4(), Role.COMPLIANCE))


async def _gtd_sell_past_its_expiry(sessions: SessionFactory, security_id: uuid.UUID) -> uuid.UUID:
    """A sell placed an hour ago that expired a minute ago, its expiry timer not run yet (a lagging worker)."""
    seller = uuid.uuid4()
    await verified_lot(sessions, seller, security_id, 100)
    now = utcnow()
    body = OrderCreate(
        security_id=security_id,
        side=Side.SELL,
        quantity=50,
        limit_price=Money(amount=Decimal("10"), currency="USD"),
        time_in_force=TimeInForce.GTD,
        expires_at=now - timedelta(minutes=1),
    )
    async with transaction(sessions) as session:
        outcome = await marketplace.place_order(session, seller, body, now=now - timedelta(hours=1))
    return outcome.order.id


async def test_an_order_past_its_expiry_never_trades_or_shows(
    api: httpx.AsyncClient, sessions: SessionFactory, buyer: TestUser
) -> None:
    _, security_id = await new_security(sessions)
    await _gtd_sell_past_its_expiry(sessions, security_id)

    book = (await api.get(f"/v1/securities/{security_id}/book", headers=buyer.headers)).json()
    assert book["asks"] == []
    listings = (await api.get("/v1/listings", params={"limit": 200}, headers=buyer.headers)).json()["items"]
    assert str(security_id) not in {item["security_id"] for item in listings}
    bid = await place(api, buyer.headers, order_body(security_id, "buy", 50, "10.00"))
    assert bid["status"] == "open"
    assert await trades_of_security(sessions, security_id) == []


async def test_an_order_expiring_while_a_transaction_runs_is_off_the_book_for_it(sessions: SessionFactory) -> None:
    """Matching may wait a while for the security's lock: an order that expired since its transaction began
    must not count as on the book (PostgreSQL's now() is the transaction's start, not the present)."""
    _, security_id = await new_security(sessions)
    order_id = await _gtd_sell_past_its_expiry(sessions, security_id)
    async with sessions() as session, session.begin():
        await session.execute(  # expires a microsecond after the transaction began: past by the next statement
            text("UPDATE marketplace.order SET expires_at = now() + interval '1 microsecond' WHERE id = :o"),
            {"o": order_id},
        )
        found = await session.execute(select(Order.id).where(col(Order.id) == order_id, on_the_book()))
        assert found.first() is None
        await session.rollback()


async def test_trades_respect_the_companys_minimum_transfer(
    api: httpx.AsyncClient, token_for: Headers, sessions: SessionFactory, buyer: TestUser
) -> None:
    _, security_id = await new_security(sessions, minimum_transfer_shares=500)
    seller_id, seller = await seller_with_shares(api, token_for, security_id, 1000)
    ask = await place(api, seller, order_body(security_id, "sell", 1000, "10.00"))

    small = await api.post("/v1/orders", json=order_body(security_id, "buy", 10, "10.00"), headers=buyer.headers)
    assert small.status_code == 422 and small.json()["type"].endswith("/below-minimum-transfer")
    await place(api, buyer.headers, order_body(security_id, "buy", 600, "10.00"))
    rest = await place(api, buyer.headers, order_body(security_id, "buy", 500, "10.00"))

    assert [trade.quantity for trade in await trades_of_security(sessions, security_id)] == [600]
    assert rest["status"] == "open"  # the ask's 400 left is below the minimum: no second trade...
    remainder = (await api.get(f"/v1/orders/{ask['id']}", headers=seller)).json()
    assert remainder["status"] == "cancelled" and remainder["filled_quantity"] == 600  # ...so it is not left
    assert "minimum transfer of 500" in remainder["status_reason"]  # on the book, its 400 shares reserved
    async with sessions() as session:
        assert await holdings.available_shares(session, seller_id, security_id) == 400
    book = (await api.get(f"/v1/securities/{security_id}/book", headers=buyer.headers)).json()
    assert book["asks"] == []


async def test_no_fill_or_amendment_leaves_a_remainder_below_the_minimum_transfer_on_the_book(
    api: httpx.AsyncClient, token_for: Headers, sessions: SessionFactory, buyer: TestUser
) -> None:
    _, security_id = await new_security(sessions, minimum_transfer_shares=500)
    seller_id, seller = await seller_with_shares(api, token_for, security_id, 1200)
    ask = await place(api, seller, order_body(security_id, "sell", 1200, "10.00"))
    await place(api, buyer.headers, order_body(security_id, "buy", 600, "10.00"))  # the ask keeps 600: tradable

    shrink = await api.patch(f"/v1/orders/{ask['id']}", json={"quantity": 1000}, headers=seller)
    assert shrink.status_code == 422 and shrink.json()["type"].endswith("/below-minimum-transfer"), shrink.text
    unchanged = (await api.get(f"/v1/orders/{ask['id']}", headers=seller)).json()
    assert unchanged["quantity"] == 1200 and unchanged["status"] == "partially_filled"
    assert await reserved_outstanding(sessions, seller_id, security_id) == 1200

    big_bid = await place(api, buyer.headers, order_body(security_id, "buy", 1000, "10.00"))
    assert big_bid["filled_quantity"] == 600 and big_bid["status"] == "cancelled"  # 400 left: below the minimum
    assert "minimum transfer of 500" in big_bid["status_reason"]
    assert (await api.get(f"/v1/orders/{ask['id']}", headers=seller)).json()["status"] == "filled"


async def test_raising_the_minimum_transfer_withdraws_the_orders_it_leaves_untradable(
    api: httpx.AsyncClient, token_for: Headers, sessions: SessionFactory, buyer: TestUser
) -> None:
    company_id, security_id = await new_security(sessions)
    seller_id, seller = await seller_with_shares(api, token_for, security_id, 1000)
    small_ask = await place(api, seller, order_body(security_id, "sell", 200, "12.00"))
    large_ask = await place(api, seller, order_body(security_id, "sell", 600, "13.00"))
    small_bid = await place(api, buyer.headers, order_body(security_id, "buy", 300, "9.00"))
    admin = token_for(uuid.uuid4(), Role.ADMIN, mfa=True)

    raised = await api.patch(
        f"/v1/companies/{company_id}", json={"transfer_policy": {"minimum_transfer_shares": 500}}, headers=admin
    )

    assert raised.status_code == 200, raised.text
    for order, headers in ((small_ask, seller), (small_bid, buyer.headers)):
        withdrawn = await eventually(
            functools.partial(get_order, api, headers, order["id"]),
            lambda o: o["status"] == "cancelled",
            what="the untradable order withdrawn",
        )
        assert "minimum transfer of 500" in withdrawn["status_reason"]
    assert (await get_order(api, seller, large_ask["id"]))["status"] == "open"
    assert await reserved_outstanding(sessions, seller_id, security_id) == 600

    async def cancellations_told() -> list[str]:
        inbox = (await api.get("/v1/notifications", params={"limit": 100}, headers=buyer.headers)).json()
        return [n["body"] for n in inbox["items"] if n["kind"] == "order_cancelled"]

    company = (await api.get(f"/v1/companies/{company_id}", headers=buyer.headers)).json()
    why = f"below {company['name']}'s minimum transfer of 500 shares"  # this company's: the buyer is shared
    await eventually(cancellations_told, lambda bodies: any(why in b for b in bodies), what="the buyer told why")


async def test_a_backup_bid_taken_by_a_deal_leaves_no_remainder_below_the_minimum_transfer(
    api: httpx.AsyncClient, sessions: SessionFactory, buyer: TestUser
) -> None:
    _, security_id = await new_security(sessions, minimum_transfer_shares=500)
    bid = await place(api, buyer.headers, order_body(security_id, "buy", 700, "10.00"))
    async with transaction(sessions) as session:
        await marketplace.take_backup_bid(session, order_id=bid["id"], deal_id=uuid.uuid4(), quantity=500)

    taken = (await api.get(f"/v1/orders/{bid['id']}", headers=buyer.headers)).json()
    assert taken["filled_quantity"] == 500 and taken["status"] == "cancelled"  # 200 left: no trade could take them
    assert "minimum transfer of 500" in taken["status_reason"]


async def test_a_bid_whose_buyer_is_no_longer_accredited_neither_trades_nor_grows(
    api: httpx.AsyncClient, token_for: Headers, sessions: SessionFactory
) -> None:
    """A trade with a buyer whose accreditation lapsed while the bid rested would fail at the deal's
    participant check, cancelling the seller's order: the bid is passed over and cannot be raised.

    The accreditation is past its expiry date but its expiry timer has not fired yet (no event, so
    the bid-eligibility consumer has not withdrawn the bid): matching itself must not trade it."""
    lapsed = await make_verified_buyer(api, compliance_headers=token_for(uuid.uuid4(), Role.COMPLIANCE))
    _, security_id = await new_security(sessions)
    bid = await place(api, lapsed.headers, order_body(security_id, "buy", 50, "10.00"))
    async with transaction(sessions) as session:
        await session.execute(
            text("UPDATE profiles.accreditation SET expires_at = now() - interval '1 day' WHERE user_id = :u"),
            {"u": lapsed.id},
        )

    _, seller = await seller_with_shares(api, token_for, security_id, 100)
    ask = await place(api, seller, order_body(security_id, "sell", 50, "10.00"))
    assert ask["status"] == "open"
    assert await trades_of_security(sessions, security_id) == []
    raised = await api.patch(
        f"/v1/orders/{bid['id']}", json={"limit_price": {"amount": "11.00", "currency": "USD"}}, headers=lapsed.headers
    )
    assert raised.status_code == 422 and raised.json()["type"].endswith("/buyer-not-eligible")
    assert (await api.get(f"/v1/orders/{bid['id']}", headers=lapsed.headers)).json()["limit_price"][
        "amount"
    ] == "10.0000"


async def test_a_buyers_resting_bids_are_withdrawn_when_their_accreditation_expires(
    api: httpx.AsyncClient, token_for: Headers, sessions: SessionFactory
) -> None:
    """Passed over by matching is not enough: the bid would still show on the book and keep its time
    priority. The expiry's event withdraws every live bid of the buyer (their asks stay)."""
    lapsing = await make_verified_buyer(api, compliance_headers=token_for(uuid.uuid4(), Role.COMPLIANCE))
    _, security_id = await new_security(sessions)
    bids = [await place(api, lapsing.headers, order_body(security_id, "buy", 50, price)) for price in ("10", "9")]
    await verified_lot(sessions, lapsing.id, security_id, 20)
    ask = await place(api, lapsing.headers, order_body(security_id, "sell", 20, "30.00"))
    async with transaction(sessions) as session:
        approved = await session.exec(
            select(Accreditation).where(
                col(Accreditation.user_id) == lapsing.id, col(Accreditation.status) == "approved"
            )
        )
        for accreditation in approved.all():
            await profiles.expire_accreditation(session, accreditation.id)

    for bid in bids:
        withdrawn = await eventually(
            functools.partial(get_order, api, lapsing.headers, bid["id"]),
            lambda order: order["status"] == "cancelled",
            what="the bid withdrawn",
        )
        assert "accreditation_expired" in withdrawn["status_reason"]
    assert (await get_order(api, lapsing.headers, ask["id"]))["status"] == "open"
    book = (await api.get(f"/v1/securities/{security_id}/book", headers=lapsing.headers)).json()
    assert book["bids"] == []


async def test_an_amendment_follows_todays_transfer_rules(
    api: httpx.AsyncClient, token_for: Headers, sessions: SessionFactory
) -> None:
    company_id, security_id = await new_security(sessions)
    _, seller = await seller_with_shares(api, token_for, security_id, 1000)
    sell = await place(api, seller, order_body(security_id, "sell", 100, "10.00"))
    today = date.today()
    window = {"start_date": str(today - timedelta(days=1)), "end_date": str(today + timedelta(days=5))}
    admin = token_for(uuid.uuid4(), Role.ADMIN, mfa=True)
    changed = await api.patch(
        f"/v1/companies/{company_id}", json={"transfer_policy": {"blackout_windows": [window]}}, headers=admin
    )
    assert changed.status_code == 200, changed.text

    grow = await api.patch(f"/v1/orders/{sell['id']}", json={"quantity": 900}, headers=seller)
    assert grow.status_code == 422 and grow.json()["type"].endswith("/transfer-blackout")
    assert (await api.get(f"/v1/orders/{sell['id']}", headers=seller)).json()["quantity"] == 100


async def test_an_order_whose_workflow_was_terminated_can_still_be_cancelled(
    api: httpx.AsyncClient, token_for: Headers, sessions: SessionFactory, temporal_client: Client
) -> None:
    _, security_id = await new_security(sessions)
    seller_id, seller = await seller_with_shares(api, token_for, security_id, 100)
    sell = await place(api, seller, order_body(security_id, "sell", 100, "10.00"))
    await temporal_client.get_workflow_handle(sell["workflow_id"]).terminate(reason="ops repair")

    cancelled = await api.post(f"/v1/orders/{sell['id']}/cancel", headers=seller)

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert await reserved_outstanding(sessions, seller_id, security_id) == 0


class _TemporalDown:
    """A client whose every call fails the way an unreachable frontend does."""

    async def start_workflow(self, *args: Any, **kwargs: Any) -> None:
        raise RPCError("temporal unavailable", RPCStatusCode.UNAVAILABLE, b"")

    def get_workflow_handle(self, *args: Any, **kwargs: Any) -> _TemporalDown:
        return self

    async def signal(self, *args: Any, **kwargs: Any) -> None:
        raise RPCError("temporal unavailable", RPCStatusCode.UNAVAILABLE, b"")


async def test_an_order_saved_before_temporal_failed_is_placed_once(
    sessions: SessionFactory, settings: Settings, redis: Redis
) -> None:
    _, security_id = await new_security(sessions)
    seller = uuid.uuid4()
    await verified_lot(sessions, seller, security_id, 100)
    principal = Principal(user_id=seller, roles=frozenset({Role.INVESTOR}), mfa=False)
    body = OrderCreate(
        security_id=security_id, side=Side.SELL, quantity=40, limit_price=Money(amount=Decimal("10"), currency="USD")
    )

    order = await place_order_route(body, principal, sessions, _TemporalDown(), redis, settings)  # type: ignore[arg-type]

    assert order.status == "open" and order.quantity == 40  # answered as placed: the client does not retry
    assert await orders_of(sessions, seller) == 1
    assert await reserved_outstanding(sessions, seller, security_id) == 40


async def test_an_amendment_that_traded_is_answered_as_applied_when_temporal_fails_after_it(
    sessions: SessionFactory, settings: Settings, buyer: TestUser
) -> None:
    """The amend activity commits a crossing bid, then cannot start the deal's workflow. Failing the attempt
    would have Temporal retry an amendment already applied (refused: the bid is filled by then), so the
    owner would hear of a failure; the deal is the `deal-workflows` backstop's to start, from the outbox."""
    _, security_id = await new_security(sessions)
    seller = uuid.uuid4()
    await verified_lot(sessions, seller, security_id, 50)

    def order(side: Side, price: str) -> OrderCreate:
        return OrderCreate(security_id=security_id, side=side, quantity=50, limit_price=Money(amount=Decimal(price)))

    async with transaction(sessions) as session:
        await marketplace.place_order(session, seller, order(Side.SELL, "10"))
        bid = (await marketplace.place_order(session, buyer.id, order(Side.BUY, "9"))).order
    raise_to = AmendOrderInput(order_id=bid.id, user_id=buyer.id, limit_price=Money(amount=Decimal("10")))
    environment = ActivityEnvironment(client=cast(Client, _TemporalDown()))

    amended = await environment.run(MarketplaceActivities(sessions, settings).amend_order, raise_to)

    assert amended.status == "filled" and amended.limit_price.amount == Decimal("10")
    (trade,) = await trades_of_security(sessions, security_id)
    async with sessions() as session:
        assert (await deals.get_deal(session, trade.deal_id)).stage == "created"


async def test_a_fill_given_back_by_a_cancelled_deal_can_be_amended_below(
    api: httpx.AsyncClient, token_for: Headers, sessions: SessionFactory, buyer: TestUser
) -> None:
    _, security_id = await new_security(sessions)
    _, seller = await seller_with_shares(api, token_for, security_id, 100)
    sell = await place(api, seller, order_body(security_id, "sell", 100, "10.00"))
    await place(api, buyer.headers, order_body(security_id, "buy", 60, "10.00"))
    (trade,) = await trades_of_security(sessions, security_id)
    manager = token_for(uuid.uuid4(), Role.DEAL_MANAGER, mfa=True)
    await eventually(
        lambda: api.get(f"/v1/deals/{trade.deal_id}", headers=manager), lambda r: r.status_code == 200, what="deal"
    )
    cancel = await api.post(f"/v1/deals/{trade.deal_id}/cancel", json={"reason": "test"}, headers=manager)
    assert cancel.status_code in (200, 202), cancel.text
    await eventually(
        lambda: api.get(f"/v1/orders/{sell['id']}", headers=seller),
        lambda r: r.json()["filled_quantity"] == 0,
        timeout=60,
        what="the fill given back",
    )

    amended = await api.patch(f"/v1/orders/{sell['id']}", json={"quantity": 50}, headers=seller)

    assert amended.status_code == 200, amended.text
    assert amended.json()["quantity"] == 50


async def test_an_order_worth_more_than_the_ledger_holds_is_refused(
    api: httpx.AsyncClient, token_for: Headers, sessions: SessionFactory
) -> None:
    _, security_id = await new_security(sessions)
    seller_id, seller = await seller_with_shares(api, token_for, security_id, 10**7)  # every share of the company
    before = await marketplace_events_of(sessions, seller_id)

    body = order_body(security_id, "sell", 10**7, "1000001.00")  # just over 10^13
    response = await api.post("/v1/orders", json=body, headers=seller)

    assert response.status_code == 422 and response.json()["type"].endswith("/order-value-too-large")
    assert await orders_of(sessions, seller_id) == 0
    assert await reserved_outstanding(sessions, seller_id, security_id) == 0
    assert await marketplace_events_of(sessions, seller_id) == before


async def test_a_retried_cancel_answers_with_the_cancelled_order(
    sessions: SessionFactory,
) -> None:
    _, security_id = await new_security(sessions)
    seller = uuid.uuid4()
    await verified_lot(sessions, seller, security_id, 100)
    body = OrderCreate(
        security_id=security_id, side=Side.SELL, quantity=10, limit_price=Money(amount=Decimal("10"), currency="USD")
    )
    async with transaction(sessions) as session:
        placed = await marketplace.place_order(session, seller, body)
    for _ in range(2):  # the activity's first attempt committed; its retry must not fail the Update
        async with transaction(sessions) as session:
            outcome = await marketplace.cancel_order(session, placed.order.id, seller)
        assert outcome.order.status == "cancelled"
    assert await reserved_outstanding(sessions, seller, security_id) == 0
