"""Trade reports for compliance exports, and the fills check of reconciliation."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.marketplace import Fill, FillStatus, Order, Trade


class FillDiscrepancy(BaseModel):
    """An order whose `filled_quantity` is not the sum of its active fills (a fill given back twice, or lost)."""

    order_id: uuid.UUID
    filled_quantity: int
    active_fills: int


async def trades_between(
    session: AsyncSession, start: datetime | None, end: datetime | None, *, limit: int = 10_000
) -> list[Trade]:
    """Trades matched in [start, end), oldest first."""
    query = select(Trade).order_by(col(Trade.matched_at), col(Trade.id)).limit(limit)
    if start is not None:
        query = query.where(col(Trade.matched_at) >= start)
    if end is not None:
        query = query.where(col(Trade.matched_at) < end)
    return list((await session.exec(query)).all())


async def fill_discrepancies(session: AsyncSession, *, limit: int = 100) -> list[FillDiscrepancy]:
    """Orders whose filled quantity disagrees with their active fills (none on a sound book)."""
    active = (
        select(col(Fill.order_id), func.sum(col(Fill.quantity)).label("quantity"))
        .where(col(Fill.status) == FillStatus.ACTIVE.value)
        .group_by(col(Fill.order_id))
        .subquery()
    )
    filled = func.coalesce(active.c.quantity, 0)
    rows = await session.execute(
        select(col(Order.id), col(Order.filled_quantity), filled)
        .outerjoin(active, active.c.order_id == col(Order.id))
        .where(col(Order.filled_quantity) != filled)
        .order_by(col(Order.id))
        .limit(limit)
    )
    return [
        FillDiscrepancy(order_id=order_id, filled_quantity=quantity, active_fills=int(fills))
        for order_id, quantity, fills in rows.tuples()
    ]
