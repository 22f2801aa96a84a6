"""What the deals context calls on the marketplace while it executes a trade (all idempotent per deal)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import Money, utcnow
from models.marketplace import (
    BidCandidate,
    DealOrders,
    Fill,
    FillStatus,
    Order,
    OrderStatus,
    Side,
    Trade,
    TradeStatus,
)
from services import companies, holdings
from services.marketplace.book import emit_book_changed
from services.marketplace.common import (
    ORDER_CANCELLED,
    TRADE_CANCELLED,
    TRADE_SETTLED,
    can_trade,
    emit_order,
    emit_trade,
    fill_status,
    is_live,
    load_order,
    lock_order,
    lock_security,
    money,
    on_the_book,
    order_change_event,
    order_read,
    trade_read,
)
from services.marketplace.errors import BidNotAvailable, OrderNotFound
from services.marketplace.match_ops import add_fill, close_untradable_remainders


async def _trade(session: AsyncSession, deal_id: uuid.UUID, *, for_update: bool = False) -> Trade | None:
    query = select(Trade).where(col(Trade.deal_id) == deal_id)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(query)).scalars().first()


async def best_resting_bid(
    session: AsyncSession,
    *,
    security_id: uuid.UUID,
    min_price: Money,
    quantity: int,
    exclude_user_ids: set[uuid.UUID],
) -> BidCandidate | None:
    """The best live bid at or above `min_price` that can take `quantity` whole (a deal's backup buyer)."""
    remaining = col(Order.quantity) - col(Order.filled_quantity)
    query = (
        select(Order)
        .where(
            col(Order.security_id) == security_id,
            col(Order.side) == Side.BUY.value,
            on_the_book(),
            col(Order.limit_price_currency) == min_price.currency,
            col(Order.limit_price_amount) >= min_price.amount,
            remaining >= quantity,
        )
        .order_by(col(Order.limit_price_amount).desc(), col(Order.priority))
        .limit(100)
    )
    if exclude_user_ids:
        query = query.where(col(Order.user_id).not_in(list(exclude_user_ids)))
    for order in (await session.execute(query)).scalars():
        left = order.quantity - order.filled_quantity
        if order.min_quantity is None or quantity >= order.min_quantity or quantity == left:
            return _candidate(order)
    return None


def _candidate(order: Order) -> BidCandidate:
    return BidCandidate(
        order_id=order.id,
        user_id=order.user_id,
        security_id=order.security_id,
        limit_price=money(order.limit_price_amount, order.limit_price_currency),
        remaining_quantity=order.quantity - order.filled_quantity,
    )


async def take_backup_bid(session: AsyncSession, *, order_id: uuid.UUID, deal_id: uuid.UUID, quantity: int) -> None:
    """Mark `quantity` of a live bid filled by `deal_id` (a second call for the same deal does nothing)."""
    order = await lock_order(session, order_id)
    existing = (
        (await session.execute(select(Fill).where(col(Fill.deal_id) == deal_id, col(Fill.order_id) == order_id)))
        .scalars()
        .first()
    )
    if existing is not None:
        return
    if order.side != Side.BUY.value or not can_trade(order, utcnow()) or quantity <= 0:
        raise BidNotAvailable(f"Order {order_id} is not a live bid (or is past its expiry).")
    if quantity > order.quantity - order.filled_quantity:
        raise BidNotAvailable(f"Order {order_id} has only {order.quantity - order.filled_quantity} shares left.")
    add_fill(session, order, deal_id, quantity)
    await session.flush()
    await emit_order(session, order_change_event(order), order)
    policy = await companies.trading_policy(session, order.security_id, utcnow().date())
    if policy is not None:
        await close_untradable_remainders(session, [order], policy.minimum_transfer_shares)
    await emit_book_changed(session, order.security_id)


async def _active_bid_fills(
    session: AsyncSession, deal_id: uuid.UUID, *, for_update: bool = False
) -> list[tuple[Fill, Order]]:
    """The deal's fills still in force on buy orders, with their orders (`for_update`: locked and re-read)."""
    query = (
        select(Fill, Order)
        .join(Order, col(Order.id) == col(Fill.order_id))
        .where(
            col(Fill.deal_id) == deal_id,
            col(Fill.status) == FillStatus.ACTIVE.value,
            col(Order.side) == Side.BUY.value,
        )
        .order_by(col(Fill.order_id))
    )
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return [(fill, order) for fill, order in (await session.execute(query)).tuples()]


async def backup_taken(
    session: AsyncSession, *, deal_id: uuid.UUID, buyer_id: uuid.UUID, defaulted: set[uuid.UUID]
) -> BidCandidate | None:
    """The bid an earlier attempt already took for this deal's backup buyer (so a retried step takes no second one)."""
    for _, order in await _active_bid_fills(session, deal_id):
        if order.user_id != buyer_id and order.user_id not in defaulted:
            return _candidate(order)
    return None


async def drop_defaulted_buyer(
    session: AsyncSession, *, deal_id: uuid.UUID, buyer_id: uuid.UUID, reason: str
) -> list[uuid.UUID]:
    """The buyer missed the deal's funding deadline and was replaced: their fill is given back and their
    order withdrawn (`cancelled`), so a defaulter's bid neither keeps shares it never paid for nor stays
    on the book to default again. Idempotent. Returns the orders that were live (their workflows re-read them).
    """
    fills = await _buyer_fills(session, deal_id, buyer_id)
    withdrawn: list[uuid.UUID] = []
    for fill, stale in fills:
        order = await load_order(session, stale.id, for_update=True)
        if is_live(order):
            withdrawn.append(order.id)
        fill.status = FillStatus.GIVEN_BACK.value
        session.add(fill)
        order.filled_quantity -= fill.quantity
        order.status = OrderStatus.CANCELLED.value
        order.status_reason = f"buyer defaulted on deal {deal_id}: {reason}"[:200]
        order.updated_at = utcnow()
        session.add(order)
        await session.flush()
        await emit_order(session, ORDER_CANCELLED, order)
    if fills:
        await emit_book_changed(session, fills[0][1].security_id)
    return withdrawn


async def give_back_replaced_buyer(
    session: AsyncSession, *, deal_id: uuid.UUID, buyer_id: uuid.UUID
) -> list[uuid.UUID]:
    """The company exercised its right of first refusal and took the buyer's place: the buyer's fill is
    given back (a live bid gets the quantity back on the book, a filled one is cancelled). Idempotent.
    Returns the orders that were live (their workflows re-read them)."""
    fills = await _buyer_fills(session, deal_id, buyer_id)
    live: list[uuid.UUID] = []
    for fill, stale in fills:
        order = await load_order(session, stale.id, for_update=True)
        if is_live(order):
            live.append(order.id)
        await _give_back(
            session, order, fill, deal_id, f"the company exercised its right of first refusal on deal {deal_id}"
        )
    if fills:
        await emit_book_changed(session, fills[0][1].security_id)
    return live


async def _buyer_fills(session: AsyncSession, deal_id: uuid.UUID, buyer_id: uuid.UUID) -> list[tuple[Fill, Order]]:
    """The deal's fills still in force on `buyer_id`'s bids, with the security locked (as matching locks it).

    They are read again under the lock: an overlapping attempt of the same step may have given them
    back while this one waited, and a fill read before the lock would then be subtracted twice.
    """
    seen = await _active_bid_fills(session, deal_id)
    if not any(order.user_id == buyer_id for _, order in seen):
        return []
    await lock_security(session, seen[0][1].security_id)
    return [(f, o) for f, o in await _active_bid_fills(session, deal_id, for_update=True) if o.user_id == buyer_id]


async def on_deal_closed(session: AsyncSession, *, deal_id: uuid.UUID) -> None:
    """The deal settled: the trade is settled (the orders need nothing more). Idempotent."""
    trade = await _trade(session, deal_id, for_update=True)
    if trade is None or trade.status != TradeStatus.MATCHED.value:
        return
    trade.status = TradeStatus.SETTLED.value
    trade.closed_at = utcnow()
    session.add(trade)
    await session.flush()
    await emit_trade(session, TRADE_SETTLED, trade)


async def on_deal_cancelled(session: AsyncSession, *, deal_id: uuid.UUID, reason: str) -> list[uuid.UUID]:
    """The deal failed: every fill it took is given back once.

    A live order gets the quantity back on the book (a sell keeps those shares reserved);
    a closed order releases a sell's shares and, if it was `filled`, becomes `cancelled`.
    Returns the orders that changed (their workflows re-read them).
    """
    trade = await _trade(session, deal_id, for_update=True)
    fills_query = select(Fill).where(col(Fill.deal_id) == deal_id, col(Fill.status) == FillStatus.ACTIVE.value)
    fills = list((await session.execute(fills_query)).scalars())
    if not fills and (trade is None or trade.status == TradeStatus.CANCELLED.value):
        return []
    security_id = trade.security_id if trade else (await load_order(session, fills[0].order_id)).security_id
    await lock_security(session, security_id)
    locked = fills_query.with_for_update().execution_options(populate_existing=True)
    fills = list((await session.execute(locked)).scalars())  # re-read: an overlapping attempt may have given some back
    for fill in sorted(fills, key=lambda f: str(f.order_id)):
        order = await load_order(session, fill.order_id, for_update=True)
        await _give_back(session, order, fill, deal_id, f"deal cancelled: {reason}")
    if trade is not None and trade.status != TradeStatus.CANCELLED.value:
        trade.status = TradeStatus.CANCELLED.value
        trade.closed_at = utcnow()
        session.add(trade)
        await session.flush()
        await emit_trade(session, TRADE_CANCELLED, trade)
    await emit_book_changed(session, security_id)
    return [fill.order_id for fill in fills]


async def _give_back(session: AsyncSession, order: Order, fill: Fill, deal_id: uuid.UUID, status_reason: str) -> None:
    live = is_live(order)
    if not live and order.side == Side.SELL.value and order.reservation_reference:
        await holdings.release_reservation(
            session, order.reservation_reference, fill.quantity, idempotency_key=f"deal-cancelled:{deal_id}"
        )
    fill.status = FillStatus.GIVEN_BACK.value
    session.add(fill)
    order.filled_quantity -= fill.quantity
    if live:
        order.status = fill_status(order)
    elif order.status == OrderStatus.FILLED.value:
        order.status = OrderStatus.CANCELLED.value
        order.status_reason = status_reason[:200]
    order.updated_at = utcnow()
    session.add(order)
    await session.flush()
    await emit_order(session, ORDER_CANCELLED if not live else order_change_event(order), order)


async def order_for_deal(session: AsyncSession, deal_id: uuid.UUID) -> DealOrders | None:
    """The trade behind a deal with its buy and sell orders, and where the seller's shares are reserved."""
    trade = await _trade(session, deal_id)
    if trade is None:
        return None
    try:
        buy = await load_order(session, trade.buy_order_id)
        sell = await load_order(session, trade.sell_order_id)
    except OrderNotFound:
        return None
    backups = (
        await session.execute(
            select(col(Fill.order_id)).where(col(Fill.deal_id) == deal_id, col(Fill.order_id) != trade.buy_order_id)
        )
    ).scalars()
    return DealOrders(
        trade=trade_read(trade),
        buy_order=order_read(buy),
        sell_order=order_read(sell),
        seller_reservation_reference=sell.reservation_reference,
        backup_buy_order_ids=[oid for oid in backups if oid != trade.sell_order_id],
    )
