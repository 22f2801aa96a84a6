"""The verification queue: deposited lots waiting for an issuer or compliance to verify them."""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.holdings import Holding, HoldingStatus


async def pending_verifications(session: AsyncSession, limit: int = 200) -> list[Holding]:
    """Lots pending verification, oldest first."""
    query = (
        select(Holding)
        .where(Holding.status == HoldingStatus.PENDING_VERIFICATION.value)
        .order_by(col(Holding.created_at))
        .limit(limit)
    )
    return list((await session.exec(query)).all())
