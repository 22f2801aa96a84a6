"""Placing orders and reading them: validation, reservation, save + event, matching, in ONE transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import or_, select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import utcnow
from models.deals import DealWorkflowInput
from models.marketplace import LIVE_STATUSES, Order, OrderCreate, OrderPage, OrderRead, OrderStatus, Side, TradeRead
from services import admin, companies, holdings, profiles
from services.identity.permissions import Permission, permissions_of
from services.identity.tokens import Principal
from services.marketplace.book import emit_book_changed
from services.marketplace.common import ORDER_CREATED, emit_order, load_order, lock_security, next_priority, order_read
from services.marketplace.errors import BuyerNotEligible, CurrencyMismatch, OrderNotFound, UnknownSecurity
from services.marketplace.match_ops import match_order
from services.marketplace.validation import check_order
from services.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor

DEFAULT_CURRENCY = "USD"


async def ensure_buyer_eligible(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Bidding (placing or amending a buy) needs approved KYC and an unexpired accreditation; else 422."""
    eligibility = await profiles.buyer_eligibility(session, user_id)
    if not eligibility.eligible:
        raise BuyerNotEligible(
            "Buying needs approved KYC and an unexpired accreditation: " + ", ".join(eligibility.reasons) + ".",
            reasons=eligibility.reasons,
            kyc_status=eligibility.kyc_status,
            accreditation_status=eligibility.accreditation_status,
        )


@dataclass
class OrderOutcome:
    """An order after a change, with what matching did (the boundary starts deals and signals after commit)."""

    order: OrderRead
    trades: list[TradeRead] = field(default_factory=list)
    touched_order_ids: list[uuid.UUID] = field(default_factory=list)
    deals: list[DealWorkflowInput] = field(default_factory=list)


def order_reference(order_id: uuid.UUID) -> str:
    """The reservation reference of a sell order's shares (until an amendment increases its quantity)."""
    return f"order:{order_id}"


async def place_order(
    session: AsyncSession, user_id: uuid.UUID, body: OrderCreate, *, now: datetime | None = None
) -> OrderOutcome:
    """Validate, reserve (sells), save with `marketplace.order.created`, then match; all or nothing."""
    now = now or utcnow()
    await admin.ensure_not_frozen(session, user_id)
    check_order(body, now)
    try:
        security, issuer = await companies.get_security_and_company(session, body.security_id)
    except companies.SecurityNotFound as error:
        raise UnknownSecurity(
            f"No security {body.security_id}.",
            errors=[{"pointer": "/body/security_id", "field": "security_id", "detail": "unknown security"}],
        ) from error
    currency = security.last_round_price.currency if security.last_round_price else DEFAULT_CURRENCY
    if body.limit_price.currency != currency:
        raise CurrencyMismatch(f"{security.class_name} trades in {currency}.", currency=currency)
    policy = await companies.check_transfer_allowed(session, security, body.quantity, now.date(), company=issuer)
    if body.side == Side.BUY:
        await ensure_buyer_eligible(session, user_id)
    await lock_security(session, security.id)
    order_id = uuid.uuid4()
    reference: str | None = None
    if body.side == Side.SELL:
        reference = order_reference(order_id)
        await holdings.reserve_shares(
            session, owner_id=user_id, security_id=security.id, quantity=body.quantity, reference=reference
        )
    order = Order(
        id=order_id,
        user_id=user_id,
        security_id=security.id,
        company_id=security.company_id,
        side=body.side.value,
        quantity=body.quantity,
        min_quantity=body.min_quantity,
        limit_price_amount=body.limit_price.amount,
        limit_price_currency=body.limit_price.currency,
        time_in_force=body.time_in_force.value,
        expires_at=body.expires_at,
        status=OrderStatus.OPEN.value,
        priority=await next_priority(session, security.id),
        reservation_reference=reference,
        created_at=now,
        updated_at=now,
    )
    session.add(order)
    await session.flush()
    await emit_order(session, ORDER_CREATED, order)
    outcome = await match_order(session, order, policy=policy)
    await emit_book_changed(session, security.id)
    return OrderOutcome(order_read(order), outcome.trades, outcome.touched_order_ids, outcome.deals)


async def live_orders_of(session: AsyncSession, user_id: uuid.UUID) -> list[OrderRead]:
    """The user's orders still on the book (open or partially filled), oldest first."""
    rows = await session.execute(
        select(Order)
        .where(col(Order.user_id) == user_id, col(Order.status).in_([s.value for s in LIVE_STATUSES]))
        .order_by(col(Order.created_at))
    )
    return [order_read(order) for order in rows.scalars()]


async def live_orders_below(session: AsyncSession, company_id: uuid.UUID, minimum: int) -> list[OrderRead]:
    """The company's orders still on the book with fewer shares left than `minimum` (its minimum transfer)."""
    rows = await session.execute(
        select(Order)
        .where(
            col(Order.company_id) == company_id,
            col(Order.status).in_([s.value for s in LIVE_STATUSES]),
            col(Order.quantity) - col(Order.filled_quantity) < minimum,
        )
        .order_by(col(Order.created_at))
    )
    return [order_read(order) for order in rows.scalars()]


def can_read_all(principal: Principal) -> bool:
    return Permission.ORDERS_READ_ALL in permissions_of(principal.roles) and principal.mfa


async def get_order(session: AsyncSession, order_id: uuid.UUID) -> OrderRead:
    return order_read(await load_order(session, order_id))


async def get_order_for(session: AsyncSession, principal: Principal, order_id: uuid.UUID) -> OrderRead:
    """The order if the caller owns it or may read all orders; otherwise 404 (never reveal it exists)."""
    order = await load_order(session, order_id)
    if order.user_id != principal.user_id and not can_read_all(principal):
        raise OrderNotFound(f"No order {order_id}.")
    return order_read(order)


async def list_orders(
    session: AsyncSession,
    principal: Principal,
    *,
    status: OrderStatus | None = None,
    security_id: uuid.UUID | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> OrderPage:
    """Newest first: the caller's own orders (all orders for deal managers and compliance)."""
    limit = max(1, min(limit, MAX_LIMIT))
    query = select(Order)
    if not can_read_all(principal):
        query = query.where(col(Order.user_id) == principal.user_id)
    if status is not None:
        query = query.where(col(Order.status) == status.value)
    if security_id is not None:
        query = query.where(col(Order.security_id) == security_id)
    if cursor:
        created_at, last_id = decode_cursor(cursor)
        query = query.where(
            or_(
                col(Order.created_at) < created_at,
                (col(Order.created_at) == created_at) & (col(Order.id) < last_id),
            )
        )
    query = query.order_by(col(Order.created_at).desc(), col(Order.id).desc()).limit(limit + 1)
    rows = list((await session.execute(query)).scalars())
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return OrderPage(items=[order_read(o) for o in page], next_cursor=next_cursor)
