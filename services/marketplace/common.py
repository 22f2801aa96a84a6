"""Shared pieces of the marketplace use cases: read models, the per-security lock, events."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from events import topics
from events.outbox import record_event
from models.base import Money
from models.marketplace import (
    LIVE_STATUSES,
    Order,
    OrderRead,
    OrderStatus,
    Side,
    TimeInForce,
    Trade,
    TradeRead,
    TradeStatus,
    money_dict,
)
from pap.db import lock_for_transaction
from services.marketplace.errors import OrderNotFound
from temporal.ids import order_workflow_id

SOURCE = "/pap/marketplace"
ORDER_CREATED = "marketplace.order.created"
ORDER_UPDATED = "marketplace.order.updated"
ORDER_CANCELLED = "marketplace.order.cancelled"
ORDER_EXPIRED = "marketplace.order.expired"
ORDER_FILLED = "marketplace.order.filled"
TRADE_MATCHED = "marketplace.trade.matched"
TRADE_SETTLED = "marketplace.trade.settled"
TRADE_CANCELLED = "marketplace.trade.cancelled"
BOOK_CHANGED = "marketplace.book.changed"
_STEP = Decimal("0.0001")


def money(amount: Decimal, currency: str) -> Money:
    return Money(amount=amount.quantize(_STEP), currency=currency)


def order_read(order: Order) -> OrderRead:
    return OrderRead(
        id=order.id,
        user_id=order.user_id,
        security_id=order.security_id,
        company_id=order.company_id,
        side=Side(order.side),
        quantity=order.quantity,
        filled_quantity=order.filled_quantity,
        remaining_quantity=order.quantity - order.filled_quantity,
        min_quantity=order.min_quantity,
        limit_price=money(order.limit_price_amount, order.limit_price_currency),
        time_in_force=TimeInForce(order.time_in_force),
        expires_at=order.expires_at,
        status=OrderStatus(order.status),
        status_reason=order.status_reason,
        workflow_id=order_workflow_id(order.id),
        reservation_reference=order.reservation_reference,
        created_at=order.created_at,
        updated_at=order.updated_at,
    )


def trade_read(trade: Trade) -> TradeRead:
    return TradeRead(
        id=trade.id,
        deal_id=trade.deal_id,
        security_id=trade.security_id,
        company_id=trade.company_id,
        buy_order_id=trade.buy_order_id,
        sell_order_id=trade.sell_order_id,
        buyer_id=trade.buyer_id,
        seller_id=trade.seller_id,
        quantity=trade.quantity,
        price=money(trade.price_amount, trade.price_currency),
        status=TradeStatus(trade.status),
        matched_at=trade.matched_at,
    )


def is_live(order: Order) -> bool:
    return OrderStatus(order.status) in LIVE_STATUSES


def can_trade(order: Order, now: datetime) -> bool:
    """Live and not past its good-till-date (the expiry timer may not have run yet)."""
    return is_live(order) and (order.expires_at is None or order.expires_at > now)


def on_the_book() -> ColumnElement[bool]:
    """The SQL twin of `can_trade`: orders that may match, be shown or taken as a backup bid.

    Compared with the present (`clock_timestamp()`), not the transaction's start (`now()`): matching may
    have waited for the security's lock while an order expired."""
    return and_(
        col(Order.status).in_([s.value for s in LIVE_STATUSES]),
        or_(col(Order.expires_at).is_(None), col(Order.expires_at) > func.clock_timestamp()),
    )


def fill_status(order: Order) -> str:
    if order.filled_quantity >= order.quantity:
        return OrderStatus.FILLED.value
    return OrderStatus.PARTIALLY_FILLED.value if order.filled_quantity else OrderStatus.OPEN.value


async def lock_security(session: AsyncSession, security_id: uuid.UUID) -> None:
    """Serialize every change to one security's book for the rest of the transaction.

    Every marketplace write takes this lock FIRST (before holdings positions or order
    rows), so placements, amendments, cancels and deal hooks never deadlock each other.
    """
    await lock_for_transaction(session, f"marketplace:security:{security_id}")


async def load_order(session: AsyncSession, order_id: uuid.UUID, *, for_update: bool = False) -> Order:
    query = select(Order).where(col(Order.id) == order_id)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    order: Order | None = (await session.execute(query)).scalars().first()
    if order is None:
        raise OrderNotFound(f"No order {order_id}.")
    return order


async def lock_order(session: AsyncSession, order_id: uuid.UUID) -> Order:
    """The security's book lock, then the order row lock."""
    order = await load_order(session, order_id)
    await lock_security(session, order.security_id)
    return await load_order(session, order_id, for_update=True)


async def next_priority(session: AsyncSession, security_id: uuid.UUID) -> int:
    """The next time-priority number of a security (safe: called under the security's lock)."""
    current = (
        await session.execute(select(func.max(col(Order.priority))).where(col(Order.security_id) == security_id))
    ).scalar_one()
    return int(current or 0) + 1


def order_event_data(order: Order) -> dict[str, Any]:
    return {
        "order_id": str(order.id),
        "user_id": str(order.user_id),
        "security_id": str(order.security_id),
        "company_id": str(order.company_id),
        "side": order.side,
        "quantity": order.quantity,
        "filled_quantity": order.filled_quantity,
        "remaining_quantity": order.quantity - order.filled_quantity,
        "limit_price": money_dict(order.limit_price_amount, order.limit_price_currency),
        "min_quantity": order.min_quantity,
        "status": order.status,
        "status_reason": order.status_reason,
        "time_in_force": order.time_in_force,
        "expires_at": order.expires_at.isoformat() if order.expires_at else None,
    }


async def emit_order(session: AsyncSession, type_: str, order: Order) -> None:
    await record_event(
        session,
        topic=topics.MARKETPLACE,
        key=str(order.security_id),
        type=type_,
        source=SOURCE,
        subject=str(order.id),
        data=order_event_data(order),
    )


def order_change_event(order: Order) -> str:
    status = OrderStatus(order.status)
    return {
        OrderStatus.FILLED: ORDER_FILLED,
        OrderStatus.CANCELLED: ORDER_CANCELLED,
        OrderStatus.EXPIRED: ORDER_EXPIRED,
    }.get(status, ORDER_UPDATED)


async def emit_trade(session: AsyncSession, type_: str, trade: Trade) -> None:
    await record_event(
        session,
        topic=topics.MARKETPLACE,
        key=str(trade.security_id),
        type=type_,
        source=SOURCE,
        subject=str(trade.id),
        data={
            "trade_id": str(trade.id),
            "deal_id": str(trade.deal_id),
            "security_id": str(trade.security_id),
            "company_id": str(trade.company_id),
            "buy_order_id": str(trade.buy_order_id),
            "sell_order_id": str(trade.sell_order_id),
            "buyer_id": str(trade.buyer_id),
            "seller_id": str(trade.seller_id),
            "quantity": trade.quantity,
            "price": money_dict(trade.price_amount, trade.price_currency),
            "matched_at": trade.matched_at.isoformat(),
            "status": trade.status,
        },
    )
