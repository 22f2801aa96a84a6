"""Company-level market metrics for one of its securities (the most traded, or the first)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import Money, utcnow
from models.pricing import CompanyMetrics
from services.companies import get_company
from services.errors import NotFound
from services.pricing.history import last_trade, most_traded, vwap
from services.pricing.reference import QUANTUM, latest_quote, latest_round, reference_price


def _money(amount: Decimal | None, currency: str) -> Money | None:
    return Money(amount=amount.quantize(QUANTUM), currency=currency) if amount is not None else None


async def company_metrics(
    session: AsyncSession, company_id: uuid.UUID, *, security_id: uuid.UUID | None = None, as_of: datetime | None = None
) -> CompanyMetrics:
    """Last trade, implied valuation, book, discount to the last round, 90-day VWAP and reference price.

    `implied_valuation` = price x fully diluted shares and `discount_to_last_round`
    = 1 - price / last round price, where price is the last closed trade (the
    reference price when the security never traded). A positive discount means
    trading below the round; a negative one is a premium.
    """
    as_of = as_of or utcnow()
    company = await get_company(session, company_id)
    ids = [s.id for s in company.securities]
    if security_id is not None and security_id not in ids:
        raise NotFound(f"security {security_id} is not a security of company {company_id}")
    chosen = security_id or await most_traded(session, ids) or (ids[0] if ids else None)
    if chosen is None:
        empty = dict.fromkeys(CompanyMetrics.model_fields, None)
        return CompanyMetrics.model_validate({**empty, "company_id": company_id, "as_of": as_of})
    trade = await last_trade(session, chosen, as_of)
    quote = await latest_quote(session, chosen, as_of)
    round_row = await latest_round(session, chosen, as_of, company_id)
    reference = await reference_price(session, chosen, as_of=as_of, company_id=company_id)
    average = await vwap(session, chosen, as_of)
    security = next(s for s in company.securities if s.id == chosen)
    round_price = (
        round_row.price if round_row else (security.last_round_price.amount if security.last_round_price else None)
    )
    currency = (
        trade.currency
        if trade
        else (reference.price.currency if reference.price else (quote.currency if quote else "USD"))
    )
    price = trade.price if trade else (reference.price.amount if reference.price else None)
    bid, ask = (quote.bid, quote.ask) if quote else (None, None)
    discount = (Decimal(1) - price / round_price).quantize(QUANTUM) if price is not None and round_price else None
    return CompanyMetrics(
        company_id=company_id,
        security_id=chosen,
        as_of=as_of,
        last_trade_price=_money(trade.price if trade else None, currency),
        last_trade_at=trade.at if trade else None,
        implied_valuation=_money(price * company.fully_diluted_shares if price is not None else None, currency),
        bid=_money(bid, currency),
        ask=_money(ask, currency),
        spread=_money(
            ask - bid if bid is not None and ask is not None and bid < ask else None, currency
        ),  # not crossed
        last_round_price=_money(round_price, currency),
        discount_to_last_round=format(discount, "f") if discount is not None else None,
        vwap_90d=_money(average[0], average[1]) if average else None,
        reference_price=reference.price,
    )
