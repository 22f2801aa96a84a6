"""Closing a live order (cancelled or expired): its unfilled shares go back, its status and event are saved."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import utcnow
from models.marketplace import Order, OrderStatus, Side
from services import holdings
from services.marketplace.book import emit_book_changed
from services.marketplace.common import emit_order


async def release_remaining(session: AsyncSession, order: Order, key: str) -> None:
    """Give back the sell order's unfilled shares; filled-but-unsettled shares stay reserved for their deals."""
    remaining = order.quantity - order.filled_quantity
    if order.side == Side.SELL.value and order.reservation_reference and remaining > 0:
        await holdings.release_reservation(
            session, order.reservation_reference, remaining, idempotency_key=f"{key}:{order.id}"
        )


async def close_order(session: AsyncSession, order: Order, status: OrderStatus, reason: str, event: str) -> None:
    await release_remaining(session, order, status.value)
    order.status = status.value
    order.status_reason = reason[:200]
    order.updated_at = utcnow()
    session.add(order)
    await session.flush()
    await emit_order(session, event, order)
    await emit_book_changed(session, order.security_id)
