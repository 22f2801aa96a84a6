"""The aggregated order book of a security (what `GET /v1/securities/{id}/book` and the book event show)."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy import func, select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from events import topics
from events.outbox import record_event
from models.marketplace import BookLevel, Order, OrderBook, Side
from services.marketplace.common import BOOK_CHANGED, SOURCE, money, on_the_book

EVENT_DEPTH = 50


async def order_book(session: AsyncSession, security_id: uuid.UUID, *, depth: int | None = None) -> OrderBook:
    """Remaining quantity per price level of the orders on the book (live, not past their expiry):
    bids best (highest) first, asks lowest first."""
    remaining = func.sum(col(Order.quantity) - col(Order.filled_quantity))
    rows = (
        await session.execute(
            select(col(Order.side), col(Order.limit_price_amount), col(Order.limit_price_currency), remaining)
            .where(col(Order.security_id) == security_id, on_the_book())
            .group_by(col(Order.side), col(Order.limit_price_amount), col(Order.limit_price_currency))
        )
    ).all()
    bids: list[tuple[Decimal, str, int]] = []
    asks: list[tuple[Decimal, str, int]] = []
    for side, amount, currency, quantity in rows:
        if int(quantity) > 0:
            (bids if side == Side.BUY.value else asks).append((amount, currency, int(quantity)))
    bids.sort(key=lambda level: -level[0])
    asks.sort(key=lambda level: level[0])
    if depth is not None:
        bids, asks = bids[:depth], asks[:depth]
    return OrderBook(
        security_id=security_id,
        bids=[BookLevel(price=money(a, c), quantity=q) for a, c, q in bids],
        asks=[BookLevel(price=money(a, c), quantity=q) for a, c, q in asks],
    )


async def emit_book_changed(session: AsyncSession, security_id: uuid.UUID) -> None:
    await session.flush()
    book = await order_book(session, security_id, depth=EVENT_DEPTH)
    await record_event(
        session,
        topic=topics.MARKETPLACE,
        key=str(security_id),
        type=BOOK_CHANGED,
        source=SOURCE,
        subject=str(security_id),
        data=book.model_dump(mode="json"),
    )
