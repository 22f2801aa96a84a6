"""Backtest of the reference price: how far it was, just before each closed trade, from that trade's price."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.pricing import BacktestResult, PricePrint, PrintSource
from services.pricing.reference import reference_price

EPSILON = timedelta(microseconds=1)


async def backtest(
    session: AsyncSession, security_id: uuid.UUID, *, company_id: uuid.UUID | None = None
) -> BacktestResult:
    """Mean absolute % error of the reference price 1 µs before each closed trade (skipping trades without inputs)."""
    prints = (
        await session.exec(
            select(PricePrint)
            .where(col(PricePrint.security_id) == security_id, col(PricePrint.source) == PrintSource.CLOSED_TRADE.value)
            .order_by(col(PricePrint.at), col(PricePrint.created_at))
        )
    ).all()
    errors: list[Decimal] = []
    for p in prints:
        reference = await reference_price(session, security_id, as_of=p.at - EPSILON, company_id=company_id)
        if reference.price is not None:
            errors.append(abs(reference.price.amount - p.price) / p.price)
    mape = (sum(errors, Decimal(0)) / len(errors) * 100).quantize(Decimal("0.01")) if errors else None
    return BacktestResult(
        security_id=security_id,
        trades_evaluated=len(errors),
        mean_absolute_pct_error=format(mape, "f") if mape is not None else None,
    )
