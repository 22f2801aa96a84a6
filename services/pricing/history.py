"""Price history from closed-trade prints: OHLC + volume per UTC day/week/month bucket, and VWAP over a window."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.pricing import Candle, PricePrint, PrintSource

QUANTUM = Decimal("0.0001")
MAX_PRINTS = 100_000


class Interval(StrEnum):
    DAY = "1d"
    WEEK = "1w"
    MONTH = "1m"


def bucket_start(at: datetime, interval: Interval) -> datetime:
    """The UTC start of the bucket holding `at` (weeks start on Monday, like PostgreSQL's date_trunc)."""
    day = at.astimezone(UTC).date()
    if interval is Interval.WEEK:
        day -= timedelta(days=day.weekday())
    elif interval is Interval.MONTH:
        day = day.replace(day=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _s(value: Decimal) -> str:
    return format(value.quantize(QUANTUM), "f")


async def candles(
    session: AsyncSession,
    security_id: uuid.UUID,
    interval: Interval,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[Candle]:
    """Buckets in time order; open/close are the first/last print by time (ties by arrival)."""
    query = select(PricePrint).where(
        col(PricePrint.security_id) == security_id, col(PricePrint.source) == PrintSource.CLOSED_TRADE.value
    )
    if start is not None:
        query = query.where(col(PricePrint.at) >= start)
    if end is not None:
        query = query.where(col(PricePrint.at) <= end)
    prints = (
        await session.exec(query.order_by(col(PricePrint.at), col(PricePrint.created_at)).limit(MAX_PRINTS))
    ).all()
    out: list[Candle] = []
    current: tuple[datetime, Decimal, Decimal, Decimal, Decimal, int] | None = None
    for p in prints:
        t = bucket_start(p.at, interval)
        if current is not None and current[0] == t:
            _, o, h, low, _c, v = current
            current = (t, o, max(h, p.price), min(low, p.price), p.price, v + p.quantity)
        else:
            if current is not None:
                out.append(_candle(current))
            current = (t, p.price, p.price, p.price, p.price, p.quantity)
    if current is not None:
        out.append(_candle(current))
    return out


def _candle(c: tuple[datetime, Decimal, Decimal, Decimal, Decimal, int]) -> Candle:
    return Candle(t=c[0], open=_s(c[1]), high=_s(c[2]), low=_s(c[3]), close=_s(c[4]), volume=c[5])


async def vwap(
    session: AsyncSession, security_id: uuid.UUID, as_of: datetime, *, days: int = 90
) -> tuple[Decimal, str] | None:
    """Volume-weighted average closed-trade price over (as_of - days, as_of]; None without trades."""
    row = (
        await session.exec(
            select(
                func.sum(col(PricePrint.price) * col(PricePrint.quantity)),
                func.sum(col(PricePrint.quantity)),
                func.max(col(PricePrint.currency)),
            ).where(
                col(PricePrint.security_id) == security_id,
                col(PricePrint.source) == PrintSource.CLOSED_TRADE.value,
                col(PricePrint.at) <= as_of,
                col(PricePrint.at) > as_of - timedelta(days=days),
            )
        )
    ).one()
    notional, volume, currency = row
    if not volume:
        return None
    return (Decimal(notional) / Decimal(volume)).quantize(QUANTUM), str(currency)


async def last_trade(session: AsyncSession, security_id: uuid.UUID, as_of: datetime) -> PricePrint | None:
    rows = await session.exec(
        select(PricePrint)
        .where(
            col(PricePrint.security_id) == security_id,
            col(PricePrint.source) == PrintSource.CLOSED_TRADE.value,
            col(PricePrint.at) <= as_of,
        )
        .order_by(col(PricePrint.at).desc(), col(PricePrint.created_at).desc())
        .limit(1)
    )
    return rows.first()


async def most_traded(session: AsyncSession, security_ids: list[uuid.UUID]) -> uuid.UUID | None:
    """The security with the most closed-trade volume among `security_ids` (None if none traded)."""
    if not security_ids:
        return None
    volume = func.sum(col(PricePrint.quantity))
    row = (
        await session.exec(
            select(col(PricePrint.security_id), volume)
            .where(
                col(PricePrint.security_id).in_(security_ids), col(PricePrint.source) == PrintSource.CLOSED_TRADE.value
            )
            .group_by(col(PricePrint.security_id))
            .order_by(volume.desc(), col(PricePrint.security_id))
            .limit(1)
        )
    ).first()
    return row[0] if row else None
