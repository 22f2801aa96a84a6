"""Cancel, expire and amend: each takes the security's book lock and the order's row lock, so
matching (the source of truth is the database) never fills an order once it is cancelled."""

from __future__ import annotations

import uuid

from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import Money, utcnow
from models.marketplace import Order, OrderStatus, Side
from services import companies, holdings
from services.marketplace.book import emit_book_changed
from services.marketplace.closing import close_order
from services.marketplace.common import (
    ORDER_CANCELLED,
    ORDER_EXPIRED,
    ORDER_UPDATED,
    can_trade,
    emit_order,
    is_live,
    lock_order,
    next_priority,
    order_read,
)
from services.marketplace.errors import (
    CurrencyMismatch,
    OrderNotAmendable,
    OrderNotCancellable,
    OrderNotFound,
    QuantityBelowFilled,
)
from services.marketplace.match_ops import match_order
from services.marketplace.orders import OrderOutcome, ensure_buyer_eligible
from services.marketplace.validation import check_min_quantity, check_price, check_quantity, check_value


async def cancel_order(
    session: AsyncSession, order_id: uuid.UUID, user_id: uuid.UUID | None, reason: str = "cancelled by owner"
) -> OrderOutcome:
    """Cancel a live order of `user_id` (None: by the platform) and release its unfilled reservation."""
    order = await lock_order(session, order_id)
    if user_id is not None and order.user_id != user_id:
        raise OrderNotFound(f"No order {order_id}.")
    if order.status == OrderStatus.CANCELLED.value:
        return OrderOutcome(order_read(order))  # already cancelled (a retried step, or by the platform): done
    if not is_live(order):
        raise OrderNotCancellable(f"The order is {order.status}.", order_status=order.status)
    await close_order(session, order, OrderStatus.CANCELLED, reason, ORDER_CANCELLED)
    return OrderOutcome(order_read(order))


async def expire_order(session: AsyncSession, order_id: uuid.UUID) -> OrderOutcome:
    """The good-till-date timer fired: a still-live order expires (idempotent; a closed order is left as is)."""
    order = await lock_order(session, order_id)
    if is_live(order):
        await close_order(session, order, OrderStatus.EXPIRED, "good-till-date expired", ORDER_EXPIRED)
    return OrderOutcome(order_read(order))


async def amend_order(
    session: AsyncSession,
    order_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    quantity: int | None = None,
    limit_price: Money | None = None,
) -> OrderOutcome:
    """Change quantity and/or price of a live order; a new price or more shares loses time priority.

    A sell that grows moves its shares to a new reservation (`order:{id}:v{version}`)
    covering everything it still holds plus the extra, all or nothing.
    """
    order = await lock_order(session, order_id)
    if order.user_id != user_id:
        raise OrderNotFound(f"No order {order_id}.")
    if not is_live(order):
        raise OrderNotAmendable(f"The order is {order.status}.", order_status=order.status)
    if not can_trade(order, utcnow()):
        raise OrderNotAmendable("The order is past its expiry.", order_status=order.status)
    new_quantity = order.quantity if quantity is None else quantity
    check_quantity(new_quantity)
    if new_quantity <= order.filled_quantity:
        raise QuantityBelowFilled(
            f"{order.filled_quantity} shares are already filled; the quantity must stay above that.",
            filled_quantity=order.filled_quantity,
            errors=[{"pointer": "/body/quantity", "field": "quantity", "detail": "must exceed filled_quantity"}],
        )
    check_min_quantity(order.min_quantity, new_quantity)
    if order.filled_quantity and new_quantity < order.quantity:
        await _check_remainder_tradable(session, order, new_quantity - order.filled_quantity)
    new_price = order.limit_price_amount
    if limit_price is not None:
        check_price(limit_price)
        if limit_price.currency != order.limit_price_currency:
            raise CurrencyMismatch(f"The order is priced in {order.limit_price_currency}.")
        new_price = limit_price.amount
    check_value(new_quantity, Money(amount=new_price, currency=order.limit_price_currency))
    if new_quantity == order.quantity and new_price == order.limit_price_amount:
        return OrderOutcome(order_read(order))  # nothing to change: no new version, no event
    grows = new_quantity > order.quantity
    loses_priority = grows or new_price != order.limit_price_amount
    policy = None
    if loses_priority:  # a new offer in all but name: today's transfer rules apply to it as to a new order
        policy = await companies.check_transfer_allowed(session, order.security_id, new_quantity, utcnow().date())
        if order.side == Side.BUY.value:  # and today's buyer checks: an accreditation may have expired since
            await ensure_buyer_eligible(session, order.user_id)
    version = order.version + 1
    if order.side == Side.SELL.value and order.reservation_reference and new_quantity != order.quantity:
        await _move_reservation(session, order, new_quantity, version)
    order.quantity = new_quantity
    order.limit_price_amount = new_price
    order.version = version
    order.updated_at = utcnow()
    if loses_priority:
        order.priority = await next_priority(session, order.security_id)
    session.add(order)
    await session.flush()
    await emit_order(session, ORDER_UPDATED, order)
    outcome = await match_order(session, order, policy=policy) if loses_priority else None
    await emit_book_changed(session, order.security_id)
    return OrderOutcome(
        order_read(order),
        outcome.trades if outcome else [],
        outcome.touched_order_ids if outcome else [],
        outcome.deals if outcome else [],
    )


async def _check_remainder_tradable(session: AsyncSession, order: Order, left: int) -> None:
    """Refuse to shrink a partly filled order to fewer shares than any trade may take (it would rest for good)."""
    policy = await companies.trading_policy(session, order.security_id, utcnow().date())
    minimum = policy.minimum_transfer_shares if policy else None
    if minimum and left < minimum:
        raise companies.BelowMinimumTransfer(
            f"The {left} shares left would be below the company's minimum transfer of {minimum} shares; "
            "cancel the order instead.",
            minimum_transfer_shares=minimum,
            errors=[
                {
                    "pointer": "/body/quantity",
                    "field": "quantity",
                    "detail": f"must leave at least {minimum} shares unfilled",
                }
            ],
        )


async def _move_reservation(session: AsyncSession, order: Order, new_quantity: int, version: int) -> None:
    assert order.reservation_reference is not None
    delta = new_quantity - order.quantity
    if delta < 0:
        await holdings.release_reservation(
            session, order.reservation_reference, -delta, idempotency_key=f"amend:{order.id}:v{version}"
        )
        return
    reference = f"order:{order.id}:v{version}"
    await holdings.move_reservation(
        session, order.reservation_reference, reference, add=delta, idempotency_key=f"amend:{order.id}:v{version}"
    )
    order.reservation_reference = reference
