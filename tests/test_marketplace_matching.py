"""The matching engine's invariants: pure property tests over random order streams, then the real thing
(PostgreSQL, concurrent HTTP orders) checked for double fills and lost reservations."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from decimal import Decimal

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlmodel import col

from models.base import Money
from models.marketplace import LIVE_STATUSES, Order, OrderCreate, OrderStatus, Side, Trade
from pap.db import SessionFactory, transaction
from services import marketplace
from services.errors import DomainError
from services.identity.permissions import Role
from services.marketplace.matching import BookOrder, crosses, fill_allowed, priority_key, run_stream
from tests.factories import TestUser, make_verified_buyer
from tests.market_support import new_security, verified_lot
from tests.marketplace_support import Headers, order_body, seller_with_shares

USERS = ["u1", "u2", "u3", "u4"]


@st.composite
def order_streams(draw: st.DrawFn) -> list[BookOrder]:
    count = draw(st.integers(min_value=1, max_value=40))
    orders = []
    for i in range(count):
        quantity = draw(st.integers(min_value=1, max_value=50))
        min_quantity = draw(st.one_of(st.none(), st.integers(min_value=1, max_value=quantity)))
        orders.append(
            BookOrder(
                id=i,
                user_id=draw(st.sampled_from(USERS)),
                side=draw(st.sampled_from(["buy", "sell"])),
                price=Decimal(draw(st.integers(min_value=95, max_value=105))) / 10,
                remaining=quantity,
                priority=i,
                min_quantity=min_quantity,
            )
        )
    return orders


@given(order_streams(), st.one_of(st.none(), st.integers(min_value=1, max_value=20)))
@settings(max_examples=300, deadline=None)
def test_random_order_streams_keep_every_matching_invariant(stream: list[BookOrder], min_trade: int | None) -> None:
    trades, book = run_stream(stream, min_trade)
    original = {o.id: o for o in stream}
    traded: dict[object, int] = defaultdict(int)
    live: dict[object, BookOrder] = {}
    for trade in trades:
        buy, sell = original[trade.buy_id], original[trade.sell_id]
        assert buy.side == "buy" and sell.side == "sell"
        assert buy.user_id != sell.user_id, "self-trade"
        assert sell.price <= trade.price <= buy.price, "matched across non-crossing prices"
        resting = sell if trade.incoming_id == buy.id else buy
        assert trade.price == resting.price, "trade price is the resting order's price"
        assert min_trade is None or trade.quantity >= min_trade, "a trade below the company's minimum transfer"
        for order in (buy, sell):
            remaining_before = order.remaining - traded[order.id]
            assert fill_allowed(BookOrder(**{**order.__dict__, "remaining": remaining_before}), trade.quantity)
        traded[buy.id] += trade.quantity
        traded[sell.id] += trade.quantity
    for order in stream:
        assert traded[order.id] <= order.remaining, "overfilled"
        assert book[order.id].remaining == order.remaining - traded[order.id], "quantity not conserved"
    # Price-time priority: replaying the stream, each incoming order's fills come best-first, and what is
    # left crossed only resting orders it could not trade with (self, or a min_quantity that forbids it).
    by_incoming: dict[object, list[object]] = defaultdict(list)
    for trade in trades:
        by_incoming[trade.incoming_id].append(trade.sell_id if trade.incoming_id == trade.buy_id else trade.buy_id)
    consumed: dict[object, int] = defaultdict(int)
    for incoming in stream:
        resting_ids = by_incoming[incoming.id]
        keys = [priority_key(live[r]) for r in resting_ids]
        if incoming.min_quantity is None and all(live[r].min_quantity is None for r in live):
            assert keys == sorted(keys), "fills out of price-time order"
        for trade in (t for t in trades if t.incoming_id == incoming.id):
            consumed[trade.buy_id] += trade.quantity
            consumed[trade.sell_id] += trade.quantity
        left = incoming.remaining - consumed[incoming.id]
        if left:
            for other in live.values():
                other_left = other.remaining - consumed[other.id]
                if other_left and crosses(incoming, other) and other.user_id != incoming.user_id:
                    q = min(left, other_left)
                    assert not (
                        (min_trade is None or q >= min_trade)
                        and fill_allowed(BookOrder(**{**incoming.__dict__, "remaining": left}), q)
                        and fill_allowed(BookOrder(**{**other.__dict__, "remaining": other_left}), q)
                    ), "a tradable crossing order was left on the book"
        live[incoming.id] = incoming


def test_earlier_order_at_the_same_price_fills_first_and_self_orders_are_skipped() -> None:
    stream = [
        BookOrder(id="a", user_id="s1", side="sell", price=Decimal(10), remaining=5, priority=1),
        BookOrder(id="b", user_id="s2", side="sell", price=Decimal(10), remaining=5, priority=2),
        BookOrder(id="c", user_id="s3", side="sell", price=Decimal("9.5"), remaining=5, priority=3),
        BookOrder(id="d", user_id="s3", side="buy", price=Decimal(11), remaining=8, priority=4),
    ]
    trades, _ = run_stream(stream)
    assert [(t.sell_id, t.quantity, t.price) for t in trades] == [("a", 5, Decimal(10)), ("b", 3, Decimal(10))]


def test_min_quantity_blocks_small_fills_unless_they_complete_the_order() -> None:
    stream = [
        BookOrder(id="a", user_id="s1", side="sell", price=Decimal(10), remaining=100, priority=1, min_quantity=50),
        BookOrder(id="b", user_id="b1", side="buy", price=Decimal(10), remaining=20, priority=2),
        BookOrder(id="c", user_id="b2", side="buy", price=Decimal(10), remaining=60, priority=3),
    ]
    trades, book = run_stream(stream)
    assert [(t.buy_id, t.quantity) for t in trades] == [("c", 60)]
    assert book["a"].remaining == 40
    # 40 left < min 50: a fill of all 40 completes the order, so it is allowed.
    trades, _ = run_stream(
        [*stream, BookOrder(id="d", user_id="b3", side="buy", price=Decimal(10), remaining=40, priority=4)]
    )
    assert trades[-1].quantity == 40


# --- against PostgreSQL -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def buyers(api: httpx.AsyncClient, token_for: Headers) -> list[TestUser]:
    compliance = token_for(uuid.uuid4(), Role.COMPLIANCE)
    return list(await asyncio.gather(*(make_verified_buyer(api, compliance_headers=compliance) for _ in range(2))))


async def assert_book_consistent(sessions: SessionFactory, security_id: uuid.UUID) -> None:
    """No order overfilled, fills == trades, and every seller's reserved shares == live remaining + unsettled fills."""
    async with transaction(sessions) as session:
        orders = list((await session.execute(select(Order).where(col(Order.security_id) == security_id))).scalars())
        trades = list((await session.execute(select(Trade).where(col(Trade.security_id) == security_id))).scalars())
        rows = (
            await session.execute(
                text(
                    "select owner_id, sum(quantity - released_quantity - consumed_quantity) "
                    "from holdings.reservation where security_id = :s group by owner_id"
                ),
                {"s": security_id},
            )
        ).all()
        reserved: dict[uuid.UUID, int] = {row[0]: int(row[1]) for row in rows}
    by_id = {o.id: o for o in orders}
    traded: dict[uuid.UUID, int] = defaultdict(int)
    for trade in trades:
        buy, sell = by_id[trade.buy_order_id], by_id[trade.sell_order_id]
        assert trade.buyer_id != trade.seller_id
        assert sell.limit_price_amount <= trade.price_amount <= buy.limit_price_amount
        traded[buy.id] += trade.quantity
        traded[sell.id] += trade.quantity
    expected: dict[uuid.UUID, int] = defaultdict(int)
    for order in orders:
        assert order.filled_quantity == traded[order.id] <= order.quantity
        assert (order.status == OrderStatus.FILLED.value) == (order.filled_quantity == order.quantity)
        if order.side == Side.SELL.value:
            live_remaining = order.quantity - order.filled_quantity if OrderStatus(order.status) in LIVE_STATUSES else 0
            expected[order.user_id] += live_remaining + order.filled_quantity
    assert {k: int(v) for k, v in reserved.items() if int(v)} == {k: v for k, v in expected.items() if v}


async def test_thirty_concurrent_orders_never_double_fill_or_lose_reservations(
    api: httpx.AsyncClient, token_for: Headers, sessions: SessionFactory, buyers: list[TestUser]
) -> None:
    _, security_id = await new_security(sessions)
    sellers = [await seller_with_shares(api, token_for, security_id, 100) for _ in range(6)]
    rng = random.Random(7)
    requests = []
    for i in range(30):
        price = f"{rng.randint(98, 102) / 10:.2f}"
        if i % 2:
            _, headers = sellers[i % len(sellers)]
            requests.append((headers, order_body(security_id, "sell", rng.randint(5, 40), price)))
        else:
            requests.append((buyers[i % 2].headers, order_body(security_id, "buy", rng.randint(5, 60), price)))
    responses = await asyncio.gather(*(api.post("/v1/orders", json=b, headers=h) for h, b in requests))
    refused = [r for r in responses if r.status_code != 201]
    # A seller may run out of shares under concurrency; that is the only acceptable refusal.
    assert all(r.status_code == 422 and r.json()["type"].endswith("insufficient-shares") for r in refused)
    assert len(refused) < 10
    await assert_book_consistent(sessions, security_id)
    # Cancel what is left concurrently: every unfilled reserved share comes back.
    placed = [(r.json(), h) for r, (h, _) in zip(responses, requests, strict=True) if r.status_code == 201]
    cancels = await asyncio.gather(*(api.post(f"/v1/orders/{o['id']}/cancel", headers=h) for o, h in placed))
    assert all(c.status_code in (200, 409) for c in cancels)
    await assert_book_consistent(sessions, security_id)


@given(
    st.lists(
        st.tuples(st.sampled_from([0, 1, 2, 3]), st.integers(1, 30), st.integers(98, 102)), min_size=1, max_size=12
    )
)
@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
async def test_random_orders_in_postgres_keep_fills_trades_and_reservations_consistent(
    sessions: SessionFactory, buyers: list[TestUser], steps: list[tuple[int, int, int]]
) -> None:
    _, security_id = await new_security(sessions)
    seller_ids = [uuid.uuid4(), uuid.uuid4()]
    for seller_id in seller_ids:
        await verified_lot(sessions, seller_id, security_id, 200)
    users = [*seller_ids, buyers[0].id, buyers[1].id]
    for who, quantity, tick in steps:
        body = OrderCreate(
            security_id=security_id,
            side=Side.SELL if who < 2 else Side.BUY,
            quantity=quantity,
            limit_price=Money(amount=Decimal(tick) / 10, currency="USD"),
        )
        refused: DomainError | None = None
        try:
            async with transaction(sessions) as session:
                await marketplace.place_order(session, users[who], body)
        except DomainError as error:
            refused = error
        assert refused is None or refused.type == "insufficient-shares"
    await assert_book_consistent(sessions, security_id)
