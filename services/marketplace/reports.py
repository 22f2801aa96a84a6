"""Trade reports for compliance exports."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.marketplace import Trade


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
