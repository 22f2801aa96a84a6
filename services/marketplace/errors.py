"""Errors of the marketplace context.

InvalidInput (422)
├── InvalidOrder                 invalid-order
│   ├── InvalidQuantity          invalid-quantity
│   ├── InvalidPrice             invalid-price
│   ├── InvalidMinQuantity       invalid-min-quantity
│   ├── InvalidExpiry            invalid-expiry
│   ├── OrderValueTooLarge       order-value-too-large
│   ├── CurrencyMismatch         currency-mismatch
│   └── QuantityBelowFilled      quantity-below-filled
├── UnknownSecurity              unknown-security
└── BuyerNotEligible             buyer-not-eligible
NotFound (404)
└── OrderNotFound                order-not-found
Conflict (409)
├── OrderNotCancellable          order-not-cancellable
├── OrderNotAmendable            order-not-amendable
└── BidNotAvailable              bid-not-available
(sell-side transfer rules and share reservations raise the companies/holdings errors:
lock-up-active, transfer-blackout, below-minimum-transfer, security-not-tradable, insufficient-shares)
"""

from __future__ import annotations

from services.errors import Conflict, DomainError, InvalidInput, NotFound


class InvalidOrder(InvalidInput):
    type = "invalid-order"
    title = "The order is not valid"


class InvalidQuantity(InvalidOrder):
    type = "invalid-quantity"
    title = "The quantity is out of range"


class InvalidPrice(InvalidOrder):
    type = "invalid-price"
    title = "The limit price is out of range"


class InvalidMinQuantity(InvalidOrder):
    type = "invalid-min-quantity"
    title = "The minimum quantity is not valid"


class InvalidExpiry(InvalidOrder):
    type = "invalid-expiry"
    title = "The time in force or expiry is not valid"


class OrderValueTooLarge(InvalidOrder):
    type = "order-value-too-large"
    title = "Quantity times limit price is above the platform's limit"


class CurrencyMismatch(InvalidOrder):
    type = "currency-mismatch"
    title = "The price currency is not the security's trading currency"


class QuantityBelowFilled(InvalidOrder):
    type = "quantity-below-filled"
    title = "The quantity cannot go below what is already filled"


class UnknownSecurity(InvalidInput):
    type = "unknown-security"
    title = "The security does not exist"


class BuyerNotEligible(InvalidInput):
    type = "buyer-not-eligible"
    title = "The buyer needs approved KYC and an unexpired accreditation"


class OrderNotFound(NotFound):
    type = "order-not-found"
    title = "Order not found"


class OrderNotCancellable(Conflict):
    type = "order-not-cancellable"
    title = "The order is no longer open"


class OrderNotAmendable(Conflict):
    type = "order-not-amendable"
    title = "The order can no longer be amended"


class BidNotAvailable(Conflict):
    type = "bid-not-available"
    title = "The bid cannot take this quantity"


MARKETPLACE_ERRORS: dict[str, type[DomainError]] = {
    cls.type: cls
    for cls in (
        InvalidOrder,
        InvalidQuantity,
        InvalidPrice,
        InvalidMinQuantity,
        InvalidExpiry,
        OrderValueTooLarge,
        CurrencyMismatch,
        QuantityBelowFilled,
        UnknownSecurity,
        BuyerNotEligible,
        OrderNotFound,
        OrderNotCancellable,
        OrderNotAmendable,
        BidNotAvailable,
    )
}
"""Error classes by problem type, so a failure that crossed a workflow boundary is rendered as itself."""
