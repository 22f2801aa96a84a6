"""Sanity rules for order quantities, prices and time in force (shared by placement and amendment)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from models.base import Money
from models.marketplace import OrderCreate, TimeInForce
from services.marketplace.errors import (
    InvalidExpiry,
    InvalidMinQuantity,
    InvalidPrice,
    InvalidQuantity,
    OrderValueTooLarge,
)

MAX_QUANTITY = 10**12
MAX_PRICE = Decimal("1000000000")
PRICE_STEP = Decimal("0.0001")
MAX_ORDER_VALUE = Decimal(10**13)
"""Quantity x price: every amount a trade moves (escrow, fees, balances) must fit the ledger's
16 integer digits with room for a user's many deals."""


def _field(name: str, detail: str) -> list[dict[str, str]]:
    return [{"pointer": f"/body/{name}", "field": name, "detail": detail}]


def check_quantity(quantity: int) -> None:
    if quantity <= 0 or quantity > MAX_QUANTITY:
        raise InvalidQuantity(
            f"The quantity must be between 1 and {MAX_QUANTITY}.",
            errors=_field("quantity", f"must be between 1 and {MAX_QUANTITY}"),
        )


def check_price(price: Money) -> None:
    amount = price.amount
    if amount <= 0 or amount > MAX_PRICE:
        raise InvalidPrice(
            f"The limit price must be positive and at most {MAX_PRICE}.",
            errors=_field("limit_price", f"must be greater than 0 and at most {MAX_PRICE}"),
        )
    if amount != amount.quantize(PRICE_STEP):
        raise InvalidPrice(
            "The limit price has at most 4 decimal places.", errors=_field("limit_price", "at most 4 decimal places")
        )


def check_min_quantity(min_quantity: int | None, quantity: int) -> None:
    if min_quantity is not None and not 0 < min_quantity <= quantity:
        raise InvalidMinQuantity(
            "The minimum fill quantity must be positive and at most the quantity.",
            errors=_field("min_quantity", "must be between 1 and quantity"),
        )


def check_value(quantity: int, price: Money) -> None:
    if quantity * price.amount > MAX_ORDER_VALUE:
        raise OrderValueTooLarge(
            f"quantity x limit_price is at most {MAX_ORDER_VALUE:,} {price.currency}.",
            errors=_field("quantity", f"quantity x limit_price must be at most {MAX_ORDER_VALUE}"),
        )


def check_order(body: OrderCreate, now: datetime) -> None:
    """Raise the first rule the order's own fields break (no database needed)."""
    check_quantity(body.quantity)
    check_price(body.limit_price)
    check_value(body.quantity, body.limit_price)
    check_min_quantity(body.min_quantity, body.quantity)
    if body.time_in_force == TimeInForce.GTD:
        if body.expires_at is None or body.expires_at.tzinfo is None:
            raise InvalidExpiry(
                "A good-till-date order needs a timezone-aware expires_at.",
                errors=_field("expires_at", "required (RFC 3339 with offset) for gtd"),
            )
        if body.expires_at <= now:
            raise InvalidExpiry(
                "expires_at must be in the future.", errors=_field("expires_at", "must be in the future")
            )
    elif body.expires_at is not None:
        raise InvalidExpiry(
            "A good-till-cancelled order has no expires_at.", errors=_field("expires_at", "only allowed for gtd")
        )
