"""Running the matching engine against one security's locked book and persisting its trades.

Called inside the transaction that placed or amended the incoming order, after
`lock_security`, so matching is serialized per security and a retried transaction
either did everything or nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import Money, utcnow
from models.companies import TransferPolicy
from models.deals import DealWorkflowInput, FrozenTransferPolicy
from models.marketplace import Fill, Order, OrderStatus, Side, Trade, TradeRead
from services import companies, deals, profiles
from services.marketplace.closing import close_order
from services.marketplace.common import (
    ORDER_CANCELLED,
    TRADE_MATCHED,
    emit_order,
    emit_trade,
    fill_status,
    is_live,
    on_the_book,
    order_change_event,
)
from services.marketplace.common import trade_read as to_trade_read
from services.marketplace.matching import BookOrder, match_incoming

MAX_CANDIDATES = 500


@dataclass
class MatchOutcome:
    trades: list[TradeRead] = field(default_factory=list)
    touched_order_ids: list[uuid.UUID] = field(default_factory=list)
    """Resting orders that got filled (their workflows are signalled after commit)."""
    deals: list[DealWorkflowInput] = field(default_factory=list)
    """The deals the trades created (their workflows start after commit)."""


def book_order(order: Order) -> BookOrder:
    return BookOrder(
        id=order.id,
        user_id=order.user_id,
        side=order.side,
        price=order.limit_price_amount,
        remaining=order.quantity - order.filled_quantity,
        priority=order.priority,
        min_quantity=order.min_quantity,
    )


async def crossing_resting_orders(session: AsyncSession, incoming: Order) -> list[Order]:
    other = Side.SELL.value if incoming.side == Side.BUY.value else Side.BUY.value
    price = col(Order.limit_price_amount)
    query = select(Order).where(
        col(Order.security_id) == incoming.security_id,
        col(Order.side) == other,
        on_the_book(),
        col(Order.limit_price_currency) == incoming.limit_price_currency,
        col(Order.id) != incoming.id,
    )
    if incoming.side == Side.BUY.value:
        query = query.where(price <= incoming.limit_price_amount).order_by(price.asc(), col(Order.priority))
    else:
        query = query.where(price >= incoming.limit_price_amount).order_by(price.desc(), col(Order.priority))
    query = query.limit(MAX_CANDIDATES).with_for_update().execution_options(populate_existing=True)
    return list((await session.execute(query)).scalars())


async def _bids_still_eligible(session: AsyncSession, bids: list[Order]) -> list[Order]:
    """The resting bids whose owner may still buy: an accreditation expires (or KYC lapses) while a bid rests,
    and a trade with such a buyer would only fail at the deal's participant check, cancelling the seller."""
    owners = {bid.user_id for bid in bids}
    eligible = {owner for owner in owners if (await profiles.buyer_eligibility(session, owner)).eligible}
    return [bid for bid in bids if bid.user_id in eligible]


def add_fill(session: AsyncSession, order: Order, deal_id: uuid.UUID, quantity: int) -> None:
    session.add(Fill(deal_id=deal_id, order_id=order.id, quantity=quantity))
    order.filled_quantity += quantity
    order.status = fill_status(order)
    order.updated_at = utcnow()
    session.add(order)


async def _deal_for(session: AsyncSession, trade: Trade, sell: Order, policy: TransferPolicy) -> DealWorkflowInput:
    """The trade's deal, with the company's transfer policy frozen as it is now."""
    deal = await deals.create_deal(
        session,
        deal_id=trade.deal_id,
        security_id=trade.security_id,
        company_id=trade.company_id,
        seller_id=trade.seller_id,
        buyer_id=trade.buyer_id,
        quantity=trade.quantity,
        price=Money(amount=trade.price_amount, currency=trade.price_currency),
        source="matched",
        policy=FrozenTransferPolicy.model_validate(policy.model_dump()),
        reservation_reference=sell.reservation_reference or f"order:{sell.id}",
        buy_order_id=trade.buy_order_id,
        sell_order_id=trade.sell_order_id,
    )
    return deals.workflow_input(deal)


async def match_order(session: AsyncSession, incoming: Order, *, policy: TransferPolicy | None = None) -> MatchOutcome:
    """Cross `incoming` (already saved, security locked) with the resting book; save trades, fills, events.

    Trades follow the company's transfer rules as they are today: none while the security may not
    change hands (orders rest), none below the minimum transfer. `policy` is the company's policy when
    the caller has just checked those rules.
    """
    outcome = MatchOutcome()
    if incoming.filled_quantity >= incoming.quantity:
        return outcome
    if policy is None:
        policy = await companies.trading_policy(session, incoming.security_id, utcnow().date())
        if policy is None:
            return outcome
    candidates = await crossing_resting_orders(session, incoming)
    if incoming.side == Side.SELL.value:
        candidates = await _bids_still_eligible(session, candidates)
    resting = {order.id: order for order in candidates}
    matches = match_incoming(
        book_order(incoming), [book_order(o) for o in resting.values()], policy.minimum_transfer_shares
    )
    for match in matches:
        other = resting[uuid.UUID(str(match.resting_id))]
        buy, sell = (incoming, other) if incoming.side == Side.BUY.value else (other, incoming)
        trade_id = uuid.uuid4()
        trade = Trade(
            id=trade_id,
            deal_id=trade_id,
            security_id=incoming.security_id,
            company_id=incoming.company_id,
            buy_order_id=buy.id,
            sell_order_id=sell.id,
            buyer_id=buy.user_id,
            seller_id=sell.user_id,
            quantity=match.quantity,
            price_amount=match.price,
            price_currency=incoming.limit_price_currency,
        )
        session.add(trade)
        add_fill(session, buy, trade_id, match.quantity)
        add_fill(session, sell, trade_id, match.quantity)
        await session.flush()
        await emit_trade(session, TRADE_MATCHED, trade)
        outcome.deals.append(await _deal_for(session, trade, sell, policy))
        await emit_order(session, order_change_event(other), other)
        outcome.trades.append(to_trade_read(trade))
        if other.id not in outcome.touched_order_ids:
            outcome.touched_order_ids.append(other.id)
    if matches:
        await emit_order(session, order_change_event(incoming), incoming)
        touched = [resting[order_id] for order_id in outcome.touched_order_ids]
        await close_untradable_remainders(session, [incoming, *touched], policy.minimum_transfer_shares)
    return outcome


async def close_untradable_remainders(session: AsyncSession, orders: list[Order], minimum: int | None) -> None:
    """A fill that leaves fewer shares than the company's minimum transfer leaves a remainder no trade can
    take: it would rest on the book for good (a quote nobody can hit) with a seller's shares reserved.
    Such a remainder is cancelled and a sell's shares are released; the fills stand."""
    for order in orders:
        left = order.quantity - order.filled_quantity
        if minimum and is_live(order) and 0 < left < minimum:
            reason = f"the {left} shares left are below the company's minimum transfer of {minimum} shares"
            await close_order(session, order, OrderStatus.CANCELLED, reason, ORDER_CANCELLED)
