"""The pure price-time matching engine: which resting orders an incoming order trades with, and how much.

No database here, so it can be property-tested over random order streams; `services.marketplace.book_ops`
feeds it the locked rows of one security and persists what it returns.

Rules: an order crosses resting orders of the other side whose price is at least as good as
its limit, best price first, then earliest priority; the trade price is the resting order's
price; a user never trades with themselves (such resting orders are skipped); a fill smaller
than an order's `min_quantity` is not allowed for that order unless it completes the order;
no trade is ever smaller than the company's minimum transfer (`min_trade`).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, replace
from decimal import Decimal


@dataclass(frozen=True)
class BookOrder:
    id: Hashable
    user_id: Hashable
    side: str  # "buy" | "sell"
    price: Decimal
    remaining: int
    priority: int
    min_quantity: int | None = None


@dataclass(frozen=True)
class Match:
    resting_id: Hashable
    quantity: int
    price: Decimal


def crosses(incoming: BookOrder, resting: BookOrder) -> bool:
    if incoming.side == resting.side:
        return False
    if incoming.side == "buy":
        return resting.price <= incoming.price
    return resting.price >= incoming.price


def priority_key(order: BookOrder) -> tuple[Decimal, int]:
    """Best first: lowest ask / highest bid, then earliest priority."""
    return (order.price if order.side == "sell" else -order.price, order.priority)


def fill_allowed(order: BookOrder, quantity: int) -> bool:
    return order.min_quantity is None or quantity >= order.min_quantity or quantity == order.remaining


def match_incoming(incoming: BookOrder, resting: Iterable[BookOrder], min_trade: int | None = None) -> list[Match]:
    """The fills of `incoming` against `resting` (any order, any side), best price-time first.

    A resting order skipped for a `min_quantity` may become fillable once the incoming
    order's remainder shrinks (a fill that completes it), so passes repeat until none fills.
    """
    left = {o.id: o.remaining for o in resting if crosses(incoming, o) and o.remaining > 0}
    candidates = sorted((o for o in resting if o.id in left), key=priority_key)
    remaining = incoming.remaining
    matches: list[Match] = []
    progress = True
    while progress and remaining:
        progress = False
        for other in candidates:
            if remaining == 0:
                break
            if other.user_id == incoming.user_id or left[other.id] == 0:
                continue
            quantity = min(remaining, left[other.id])
            if min_trade is not None and quantity < min_trade:
                continue
            if not fill_allowed(replace(incoming, remaining=remaining), quantity) or not fill_allowed(
                replace(other, remaining=left[other.id]), quantity
            ):
                continue
            matches.append(Match(resting_id=other.id, quantity=quantity, price=other.price))
            remaining -= quantity
            left[other.id] -= quantity
            progress = True
    return matches


@dataclass
class Trade:
    buy_id: Hashable
    sell_id: Hashable
    quantity: int
    price: Decimal
    incoming_id: Hashable


def run_stream(
    orders: Iterable[BookOrder], min_trade: int | None = None
) -> tuple[list[Trade], dict[Hashable, BookOrder]]:
    """Place orders one after another into an empty book; returns the trades and the final book state."""
    book: dict[Hashable, BookOrder] = {}
    trades: list[Trade] = []
    for incoming in orders:
        matches = match_incoming(incoming, book.values(), min_trade)
        remaining = incoming.remaining
        for match in matches:
            other = book[match.resting_id]
            book[match.resting_id] = replace(other, remaining=other.remaining - match.quantity)
            remaining -= match.quantity
            buy, sell = (incoming.id, other.id) if incoming.side == "buy" else (other.id, incoming.id)
            trades.append(Trade(buy, sell, match.quantity, match.price, incoming.id))
        book[incoming.id] = replace(incoming, remaining=remaining)
    return trades, book
