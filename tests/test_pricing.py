"""Pricing: prints from events (duplicates, out of order), OHLC, VWAP, metrics and the as-of reference price.

Numbers are checked against fixtures computed by hand in the comments.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from events.consumer import ConsumerRunner
from events.envelope import CloudEvent
from events.kafka import create_producer
from models.base import Money
from models.companies import CompanyCreate, SecurityCreate, SecurityKind, TransferPolicy
from pap.db import SessionFactory, transaction
from pap.settings import Settings
from services import companies
from services.identity.permissions import Role
from services.pricing import backtest
from tests.support import consumer_runner, eventually
from workers.consumers import pricing_spec

FULLY_DILUTED = 1_000_000


@pytest.fixture
def runner(sessions: SessionFactory, settings: Settings, redis: Redis) -> ConsumerRunner:
    return consumer_runner(pricing_spec(redis), sessions, settings)


async def new_security(sessions: SessionFactory, last_round: str | None = "25.00") -> tuple[uuid.UUID, uuid.UUID]:
    async with transaction(sessions) as session:
        company = await companies.create_company(
            session,
            CompanyCreate(
                name=f"Pricing {uuid.uuid4().hex[:8]}",
                legal_name="Pricing Co, Inc.",
                jurisdiction="US-DE",
                sector="testing",
                fully_diluted_shares=FULLY_DILUTED,
                transfer_policy=TransferPolicy(),
            ),
        )
        price = Money(amount=Decimal(last_round), currency="USD") if last_round else None
        security = await companies.create_security(
            session,
            company.id,
            SecurityCreate(class_name="Series A", kind=SecurityKind.PREFERRED, last_round_price=price),
        )
    return company.id, security.id


def closed(security_id: uuid.UUID, company_id: uuid.UUID, price: str, quantity: int, at: datetime) -> CloudEvent:
    """A deals.closed event at `at` (the print's time is the event time, not when it is handled)."""
    return CloudEvent(
        source="/tests/deals",
        type="deals.closed",
        time=at,
        subject=str(uuid.uuid4()),
        data={
            "deal_id": str(uuid.uuid4()),
            "stage": "closed",
            "security_id": str(security_id),
            "company_id": str(company_id),
            "quantity": quantity,
            "price": {"amount": price, "currency": "USD"},
        },
    )


def matched(security_id: uuid.UUID, price: str, quantity: int, at: datetime) -> CloudEvent:
    return CloudEvent(
        source="/tests/marketplace",
        type="marketplace.trade.matched",
        time=at,
        data={
            "trade_id": str(uuid.uuid4()),
            "security_id": str(security_id),
            "quantity": quantity,
            "price": price,
            "matched_at": at.isoformat(),
        },
    )


async def get_json(api: httpx.AsyncClient, path: str, headers: dict[str, str], **params: Any) -> Any:
    response = await api.get(path, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_ohlc_per_day_and_week_from_closed_prints_out_of_order_and_duplicated(
    api: httpx.AsyncClient, sessions: SessionFactory, runner: ConsumerRunner, token_for: Callable[..., dict[str, str]]
) -> None:
    company_id, security_id = await new_security(sessions)
    headers = token_for(uuid.uuid4(), Role.INVESTOR)
    monday = datetime(2026, 3, 2, tzinfo=UTC)
    day1 = [
        closed(security_id, company_id, "10.00", 100, monday + timedelta(hours=9)),  # open
        closed(security_id, company_id, "12.00", 50, monday + timedelta(hours=11)),  # high
        closed(security_id, company_id, "9.50", 200, monday + timedelta(hours=13)),  # low
        closed(security_id, company_id, "11.00", 10, monday + timedelta(hours=15)),  # close
    ]
    for event in reversed(day1):  # arrival order is the reverse of event time
        assert await runner.handle_once(event) is True
    assert await runner.handle_once(day1[0]) is False  # a redelivered print is not counted twice
    await runner.handle_once(
        matched(security_id, "50.00", 999, monday + timedelta(hours=12))
    )  # an indication, not OHLC
    async with sessions() as session:  # every new print is published on pap.pricing, a redelivery is not
        printed = (
            await session.execute(
                text(
                    "SELECT data FROM platform.outbox_event WHERE topic = 'pap.pricing' "
                    "AND type = 'pricing.price.printed' AND key = :k ORDER BY seq"
                ),
                {"k": str(security_id)},
            )
        ).scalars()
        prices = [(d["source"], d["price"]["amount"], d["quantity"]) for d in printed]
    assert sorted(prices) == sorted(
        [("closed_trade", a, q) for a, q in (("10.00", 100), ("12.00", 50), ("9.50", 200), ("11.00", 10))]
        + [("matched_trade", "50.00", 999)]
    )

    path = f"/v1/securities/{security_id}/prices"
    candles = await get_json(api, path, headers, interval="1d")
    assert candles == [
        {
            "t": "2026-03-02T00:00:00Z",
            "open": "10.0000",
            "high": "12.0000",
            "low": "9.5000",
            "close": "11.0000",
            "volume": 360,
        }
    ]

    # A late print for Tuesday invalidates the cached answer.
    await runner.handle_once(closed(security_id, company_id, "11.50", 30, monday + timedelta(days=1, hours=10)))
    candles = await get_json(api, path, headers, interval="1d")
    assert [c["t"] for c in candles] == ["2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z"]
    assert candles[1] == {
        "t": "2026-03-03T00:00:00Z",
        "open": "11.5000",
        "high": "11.5000",
        "low": "11.5000",
        "close": "11.5000",
        "volume": 30,
    }

    weekly = await get_json(api, path, headers, interval="1w")
    assert weekly == [
        {
            "t": "2026-03-02T00:00:00Z",
            "open": "10.0000",
            "high": "12.0000",
            "low": "9.5000",
            "close": "11.5000",
            "volume": 390,
        }
    ]
    only_tuesday = await get_json(api, path, headers, interval="1d", **{"from": "2026-03-03T00:00:00Z"})
    assert [c["volume"] for c in only_tuesday] == [30]


async def test_metrics_vwap_90d_excludes_older_prints_and_reads_the_book(
    api: httpx.AsyncClient, sessions: SessionFactory, runner: ConsumerRunner, token_for: Callable[..., dict[str, str]]
) -> None:
    company_id, security_id = await new_security(sessions, last_round="25.00")
    headers = token_for(uuid.uuid4(), Role.INVESTOR)
    now = datetime.now(UTC)
    await runner.handle_once(
        closed(security_id, company_id, "100.00", 1000, now - timedelta(days=100))
    )  # outside 90 days
    await runner.handle_once(closed(security_id, company_id, "10.00", 100, now - timedelta(days=10)))
    await runner.handle_once(closed(security_id, company_id, "20.00", 300, now - timedelta(days=5)))
    book = CloudEvent(
        source="/tests/marketplace",
        type="marketplace.book.changed",
        time=now - timedelta(days=1),
        data={
            "security_id": str(security_id),
            "bids": [{"price": "18.50", "quantity": 5}, {"price": "19.00", "quantity": 10}],
            "asks": [
                {"price": {"amount": "22.00", "currency": "USD"}, "quantity": 1},
                {"price": {"amount": "21.00", "currency": "USD"}, "quantity": 7},
            ],
        },
    )
    await runner.handle_once(book)

    metrics = await get_json(api, f"/v1/companies/{company_id}/metrics", headers)
    assert metrics["security_id"] == str(security_id)
    # VWAP = (10 x 100 + 20 x 300) / 400 = 17.5; the 100.00 print is 100 days old.
    assert metrics["vwap_90d"] == {"amount": "17.5000", "currency": "USD"}
    assert metrics["last_trade_price"] == {"amount": "20.0000", "currency": "USD"}
    # 20 x 1,000,000 fully diluted shares; discount = 1 - 20 / 25 = 0.2 (positive: below the round).
    assert metrics["implied_valuation"] == {"amount": "20000000.0000", "currency": "USD"}
    assert metrics["discount_to_last_round"] == "0.2000"
    assert metrics["last_round_price"] == {"amount": "25.0000", "currency": "USD"}
    assert metrics["bid"]["amount"] == "19.0000"
    assert metrics["ask"]["amount"] == "21.0000"
    assert metrics["spread"]["amount"] == "2.0000"
    assert metrics["reference_price"] is not None

    other = await api.get(
        f"/v1/companies/{company_id}/metrics", params={"security_id": str(uuid.uuid4())}, headers=headers
    )
    assert other.status_code == 404


async def test_reference_price_as_of_ignores_later_prints_and_weights_by_recency(
    api: httpx.AsyncClient, sessions: SessionFactory, runner: ConsumerRunner, token_for: Callable[..., dict[str, str]]
) -> None:
    company_id, security_id = await new_security(sessions, last_round=None)
    headers = token_for(uuid.uuid4(), Role.INVESTOR)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=40)
    await runner.handle_once(closed(security_id, company_id, "10.00", 100, t0))
    await runner.handle_once(closed(security_id, company_id, "20.00", 100, t0 + timedelta(days=2)))
    path = f"/v1/securities/{security_id}/reference-price"

    early = await get_json(api, path, headers, as_of=(t0 + timedelta(days=1)).isoformat())
    assert early["price"] == {"amount": "10.0000", "currency": "USD"}
    assert [i["price"] for i in early["inputs"]] == ["10.0000"]
    # One closed trade one day old: weight = 1.0 x 2^(-1/30) = 0.97715996...
    assert abs(Decimal(early["inputs"][0]["weight"]) - Decimal(2 ** (-1 / 30))) < Decimal("1e-9")

    as_of = t0 + timedelta(days=2, hours=12)
    late = await get_json(api, path, headers, as_of=as_of.isoformat())
    # Equal quantities (share 0.5 each), ages 2.5 and 0.5 days, half-life 30 days.
    w1, w2 = 0.5 * 2 ** (-2.5 / 30), 0.5 * 2 ** (-0.5 / 30)
    expected = (w1 * 10 + w2 * 20) / (w1 + w2)
    assert late["price"]["amount"] == f"{expected:.4f}"
    assert late["method"] == "hierarchy-recency-weighted-v1"
    assert {i["source"] for i in late["inputs"]} == {"closed_trade"}
    assert await get_json(api, path, headers, as_of=as_of.isoformat()) == late  # reproducible

    # A match only later than as_of changes nothing for that as_of.
    await runner.handle_once(matched(security_id, "99.00", 10, as_of + timedelta(hours=1)))
    assert (await get_json(api, path, headers, as_of=as_of.isoformat()))["price"] == late["price"]

    async with transaction(sessions) as session:
        result = await backtest(session, security_id)
    # Only the second trade has a prior input: reference 10 vs trade 20 -> 50 % error.
    assert result.trades_evaluated == 1
    assert result.mean_absolute_pct_error == "50.00"
    assert math.isclose(expected, float(late["price"]["amount"]), abs_tol=1e-4)


async def test_reference_price_blends_sources_by_hierarchy() -> None:
    from services.pricing.reference import Observation, blend

    at = datetime(2026, 1, 1, tzinfo=UTC)
    price, inputs = blend(
        [
            Observation("closed_trade", Decimal(10), 100, at, "USD"),
            Observation("last_round", Decimal(30), None, at, "USD"),
        ],
        at,
    )
    # Age 0: weights 1.0 and 0.1 -> (10 + 3) / 1.1 = 11.8182
    assert price == Decimal("11.8182")
    assert [i.weight for i in inputs] == ["1.0000000000", "0.1000000000"]


async def test_unknown_security_prices_are_404_and_need_a_token(
    api: httpx.AsyncClient, token_for: Callable[..., dict[str, str]]
) -> None:
    missing = await api.get(f"/v1/securities/{uuid.uuid4()}/prices", headers=token_for(uuid.uuid4(), Role.INVESTOR))
    assert missing.status_code == 404
    assert (await api.get(f"/v1/securities/{uuid.uuid4()}/prices")).status_code == 401


async def test_a_closed_deal_on_the_broker_reaches_price_history_through_the_running_consumers(
    api: httpx.AsyncClient, sessions: SessionFactory, settings: Settings, token_for: Callable[..., dict[str, str]]
) -> None:
    company_id, security_id = await new_security(sessions)
    headers = token_for(uuid.uuid4(), Role.INVESTOR)
    event = closed(security_id, company_id, "42.00", 7, datetime(2026, 4, 1, 10, tzinfo=UTC))
    producer = create_producer(settings.require("kafka_bootstrap"))
    await producer.start()
    try:
        for _ in range(2):  # a duplicate on the wire
            await producer.send_and_wait("pap.deals", event.to_bytes(), key=str(event.subject).encode())
    finally:
        await producer.stop()

    async def history() -> Any:
        return await get_json(api, f"/v1/securities/{security_id}/prices", headers, interval="1d")

    candles = await eventually(history, lambda c: bool(c), what="the print stored by the pricing consumer")
    assert candles[0]["close"] == "42.0000"
    assert candles[0]["volume"] == 7


async def test_a_read_while_a_print_is_being_stored_never_caches_the_old_answer_past_the_commit(
    api: httpx.AsyncClient, sessions: SessionFactory, redis: Redis, token_for: Callable[..., dict[str, str]]
) -> None:
    company_id, security_id = await new_security(sessions)
    headers = token_for(uuid.uuid4(), Role.INVESTOR)
    path = f"/v1/securities/{security_id}/prices"
    handler = pricing_spec(redis).handler
    async with transaction(sessions) as session:
        await handler(session, closed(security_id, company_id, "10.00", 100, datetime(2026, 3, 2, 9, tzinfo=UTC)))
        assert await get_json(api, path, headers, interval="1d") == []  # not committed: cached as empty
    candles = await get_json(api, path, headers, interval="1d")
    assert [c["volume"] for c in candles] == [100]


async def test_a_crossed_book_gives_no_midpoint_and_no_spread(
    api: httpx.AsyncClient, sessions: SessionFactory, runner: ConsumerRunner, token_for: Callable[..., dict[str, str]]
) -> None:
    """One user's own bid above their ask rests (no self-trade): it must not set the market's midpoint."""
    company_id, security_id = await new_security(sessions, last_round=None)
    headers = token_for(uuid.uuid4(), Role.INVESTOR)
    book = CloudEvent(
        source="/tests/marketplace",
        type="marketplace.book.changed",
        time=datetime.now(UTC) - timedelta(hours=1),
        data={
            "security_id": str(security_id),
            "bids": [{"price": "1000.00", "quantity": 1}],
            "asks": [{"price": "999.00", "quantity": 1}],
        },
    )
    await runner.handle_once(book)
    reference = await get_json(api, f"/v1/securities/{security_id}/reference-price", headers)
    assert reference["price"] is None and reference["inputs"] == []
    metrics = await get_json(api, f"/v1/companies/{company_id}/metrics", headers)
    assert metrics["bid"]["amount"] == "1000.0000" and metrics["spread"] is None
