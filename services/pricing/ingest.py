"""The pricing consumer: trade prints, book quotes and round prices stored from events, never overwritten.

Every row is keyed by the event id (unique), so a duplicated event adds
nothing, and stamped with the event's time, so events arriving out of order
still land at their place in history.
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from redis.asyncio import Redis
from sqlmodel.ext.asyncio.session import AsyncSession

from events import topics
from events.envelope import CloudEvent
from events.outbox import record_event
from models.pricing import PricePrint, PrintSource, Quote, RoundPrice
from pap.db import after_commit, insert_unless_conflict
from services.pricing.cache import invalidate

HANDLED_TYPES = frozenset(
    {
        "marketplace.trade.matched",
        "marketplace.book.changed",
        "deals.closed",
        "companies.funding_round.added",
        "companies.security.created",
        "companies.security.updated",
    }
)


def parse_price(value: Any) -> tuple[Decimal, str | None] | None:
    """A price given as a decimal string/number or `{amount, currency}`; None when absent or malformed."""
    currency = None
    if isinstance(value, dict):
        currency = value.get("currency")
        value = value.get("amount")
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return (amount, currency) if amount.is_finite() and amount > 0 else None


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value is not None else None
    except ValueError:
        return None


def _time(value: Any, default: datetime) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except ValueError:
            return default
    return default


SOURCE = "/pap/pricing"
PRICE_PRINTED = "pricing.price.printed"
"""On `pap.pricing`: a trade price the platform recorded (matched or settled), for downstream market data."""


class PricingIngest:
    """The `pricing` consumer handler; `redis` (optional) is told which securities changed."""

    def __init__(self, redis: Redis | None) -> None:
        self.redis = redis

    async def handle(self, session: AsyncSession, event: CloudEvent) -> None:
        security_id = await ingest(session, event)
        if security_id is not None:
            # After the commit: a read in between would cache the old data under the new version.
            after_commit(session, functools.partial(invalidate, self.redis, security_id))


async def ingest(session: AsyncSession, event: CloudEvent) -> uuid.UUID | None:
    """Store what the event says about prices; returns the security whose data changed (None if nothing)."""
    d = event.data
    if event.type in ("marketplace.trade.matched", "deals.closed"):
        return await _print(
            session,
            event,
            PrintSource.MATCHED_TRADE if event.type.startswith("marketplace") else PrintSource.CLOSED_TRADE,
        )
    if event.type == "marketplace.book.changed":
        return await _quote(session, event)
    if event.type == "companies.funding_round.added":
        company_id, price = _uuid(d.get("company_id")), parse_price(d.get("price_per_share"))
        if company_id is None or price is None:
            return None
        at = _round_time(d.get("round_date"), event.time)
        await _insert(
            session,
            RoundPrice,
            company_id=company_id,
            security_id=None,
            price=price[0],
            currency=price[1] or "USD",
            at=at,
            event_id=event.id,
        )
        return None
    if event.type in ("companies.security.created", "companies.security.updated"):
        security_id, company_id, price = (
            _uuid(d.get("id")),
            _uuid(d.get("company_id")),
            parse_price(d.get("last_round_price")),
        )
        if security_id is None or company_id is None or price is None:
            return None
        await _insert(
            session,
            RoundPrice,
            company_id=company_id,
            security_id=security_id,
            price=price[0],
            currency=price[1] or "USD",
            at=event.time,
            event_id=event.id,
        )
        return security_id
    return None


def _round_time(value: Any, default: datetime) -> datetime:
    try:
        day = date.fromisoformat(str(value))
    except ValueError:
        return default
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


async def _print(session: AsyncSession, event: CloudEvent, source: PrintSource) -> uuid.UUID | None:
    d = event.data
    security_id, price = _uuid(d.get("security_id")), parse_price(d.get("price"))
    quantity = int(d.get("quantity") or 0)
    if security_id is None or price is None or quantity <= 0:
        return None
    at = _time(d.get("matched_at"), event.time) if source is PrintSource.MATCHED_TRADE else event.time
    reference = d.get("trade_id") if source is PrintSource.MATCHED_TRADE else d.get("deal_id")
    values = {
        "security_id": security_id,
        "company_id": _uuid(d.get("company_id")),
        "source": source.value,
        "price": price[0],
        "currency": price[1] or "USD",
        "quantity": quantity,
        "at": at,
        "reference": str(reference) if reference else None,
    }
    if await _insert(session, PricePrint, **values, event_id=event.id):
        await record_event(
            session,
            topic=topics.PRICING,
            key=str(security_id),
            type=PRICE_PRINTED,
            source=SOURCE,
            subject=str(security_id),
            data={
                "security_id": str(security_id),
                "company_id": str(values["company_id"]) if values["company_id"] else None,
                "source": source.value,
                "price": {"amount": format(price[0], "f"), "currency": values["currency"]},
                "quantity": quantity,
                "at": at.isoformat(),
                "reference": values["reference"],
            },
        )
    return security_id


def _best(levels: Any, *, highest: bool) -> tuple[Decimal, int, str | None] | None:
    parsed = []
    for level in levels or []:
        price = parse_price(level.get("price")) if isinstance(level, dict) else None
        if price is not None:
            parsed.append((price[0], int(level.get("quantity") or 0), price[1]))
    if not parsed:
        return None
    return max(parsed, key=lambda p: p[0]) if highest else min(parsed, key=lambda p: p[0])


async def _quote(session: AsyncSession, event: CloudEvent) -> uuid.UUID | None:
    d = event.data
    security_id = _uuid(d.get("security_id"))
    if security_id is None:
        return None
    bid, ask = _best(d.get("bids"), highest=True), _best(d.get("asks"), highest=False)
    currency = (bid and bid[2]) or (ask and ask[2]) or d.get("currency") or "USD"
    await _insert(
        session,
        Quote,
        security_id=security_id,
        bid=bid[0] if bid else None,
        bid_quantity=bid[1] if bid else None,
        ask=ask[0] if ask else None,
        ask_quantity=ask[1] if ask else None,
        currency=currency,
        at=_time(d.get("at"), event.time),
        event_id=event.id,
    )
    return security_id


async def _insert(
    session: AsyncSession, table: type[PricePrint] | type[Quote] | type[RoundPrice], **values: Any
) -> bool:
    """Store one row per source event; False when this event was stored before (a redelivery)."""
    inserted = await insert_unless_conflict(
        session,
        table,
        {"id": uuid.uuid4(), "created_at": datetime.now(UTC), **values},
        index_elements=("event_id",),
        returning="id",
    )
    return inserted.first() is not None
