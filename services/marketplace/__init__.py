"""Marketplace context: orders, the per-security book, matching, trades. Other contexts call these."""

from services.marketplace.book import order_book
from services.marketplace.deal_hooks import (
    backup_taken,
    best_resting_bid,
    drop_defaulted_buyer,
    give_back_replaced_buyer,
    on_deal_cancelled,
    on_deal_closed,
    order_for_deal,
    take_backup_bid,
)
from services.marketplace.errors import (
    MARKETPLACE_ERRORS,
    BuyerNotEligible,
    OrderNotAmendable,
    OrderNotCancellable,
    OrderNotFound,
)
from services.marketplace.lifecycle import amend_order, cancel_order, expire_order
from services.marketplace.listings import list_listings
from services.marketplace.orders import (
    OrderOutcome,
    get_order,
    get_order_for,
    list_orders,
    live_orders_below,
    live_orders_of,
    order_reference,
    place_order,
)
from services.marketplace.reports import trades_between

__all__ = [
    "MARKETPLACE_ERRORS",
    "BuyerNotEligible",
    "OrderNotAmendable",
    "OrderNotCancellable",
    "OrderNotFound",
    "OrderOutcome",
    "amend_order",
    "backup_taken",
    "best_resting_bid",
    "cancel_order",
    "drop_defaulted_buyer",
    "expire_order",
    "get_order",
    "get_order_for",
    "give_back_replaced_buyer",
    "list_listings",
    "list_orders",
    "live_orders_below",
    "live_orders_of",
    "on_deal_cancelled",
    "on_deal_closed",
    "order_book",
    "order_for_deal",
    "order_reference",
    "place_order",
    "take_backup_bid",
    "trades_between",
]
