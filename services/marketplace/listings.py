"""`GET /v1/listings`: open sell interest per security, with its company's public data."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from models.marketplace import Listing, ListingPage, Order, Side
from services import companies
from services.marketplace.common import money, on_the_book
from services.pagination import DEFAULT_LIMIT, MAX_LIMIT, InvalidCursor

MAX_COMPANY_MATCHES = 1000


async def _company_ids(session: AsyncSession, sector: str | None, q: str | None) -> list[uuid.UUID]:
    """Companies matching the sector / name filters, via the companies context."""
    ids: list[uuid.UUID] = []
    cursor: str | None = None
    while len(ids) < MAX_COMPANY_MATCHES:
        page = await companies.list_companies(session, sector=sector, q=q, limit=200, cursor=cursor)
        ids += [c.id for c in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    return ids


async def list_listings(
    session: AsyncSession,
    *,
    company_id: uuid.UUID | None = None,
    sector: str | None = None,
    q: str | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> ListingPage:
    """One listing per security with live sell orders (best ask, shares available), by security id."""
    limit = max(1, min(limit, MAX_LIMIT))
    remaining = func.sum(col(Order.quantity) - col(Order.filled_quantity))
    query = (
        select(
            col(Order.security_id),
            col(Order.company_id),
            col(Order.limit_price_currency),
            func.min(col(Order.limit_price_amount)),
            remaining,
            func.count(),
        )
        .where(col(Order.side) == Side.SELL.value, on_the_book())
        .group_by(col(Order.security_id), col(Order.company_id), col(Order.limit_price_currency))
        .order_by(col(Order.security_id))
        .limit(limit + 1)
    )
    if company_id is not None:
        query = query.where(col(Order.company_id) == company_id)
    if sector or q:
        query = query.where(col(Order.company_id).in_(await _company_ids(session, sector, q)))
    if cursor:
        try:
            after = uuid.UUID(cursor)
        except ValueError as error:
            raise InvalidCursor("The cursor was not issued by this list.") from error
        query = query.where(col(Order.security_id) > after)
    rows = (await session.execute(query)).all()
    items: list[Listing] = []
    for security_id, company, currency, best, quantity, count in rows[:limit]:
        security = await companies.get_security(session, security_id)
        detail = await companies.get_company(session, company)
        items.append(
            Listing(
                security_id=security_id,
                company_id=company,
                company_name=detail.name,
                sector=detail.sector,
                security_class=security.class_name,
                best_ask=money(best, currency),
                quantity_available=int(quantity),
                orders=int(count),
            )
        )
    next_cursor = str(items[-1].security_id) if len(rows) > limit and items else None
    return ListingPage(items=items, next_cursor=next_cursor)
