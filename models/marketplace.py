"""Marketplace context: limit orders per security, the trades matching produces, and each order's fills.

An order's `filled_quantity` is the sum of its active fills. A fill links an order to
a deal (a trade's `deal_id`, or a backup bid taken by a deal), so giving a deal back
is idempotent: a fill is given back once.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import BigInteger, CheckConstraint, Column, Index, Integer, Numeric, String, UniqueConstraint
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from models.base import Money, PatchModel, optional_timestamp_column, timestamp_column, uuid_pk

SCHEMA = "marketplace"


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class TimeInForce(StrEnum):
    GTC = "gtc"
    GTD = "gtd"


class OrderStatus(StrEnum):
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REJECTED = "rejected"


LIVE_STATUSES = frozenset({OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED})


class TradeStatus(StrEnum):
    MATCHED = "matched"
    SETTLED = "settled"
    CANCELLED = "cancelled"


class FillStatus(StrEnum):
    ACTIVE = "active"
    GIVEN_BACK = "given_back"


class Order(SQLModel, table=True):
    """A limit order; `priority` orders the book within a price level (lower is earlier)."""

    __tablename__ = "order"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("filled_quantity >= 0 AND filled_quantity <= quantity", name="filled_within_quantity"),
        CheckConstraint("limit_price_amount > 0", name="price_positive"),
        Index("ix_order_book", "security_id", "side", "status", "limit_price_amount", "priority"),
        Index("ix_order_user_created", "user_id", "created_at"),
        {"schema": SCHEMA},
    )

    id: uuid.UUID = uuid_pk()
    user_id: uuid.UUID = SQLField(nullable=False)
    security_id: uuid.UUID = SQLField(nullable=False)
    company_id: uuid.UUID = SQLField(nullable=False, index=True)
    side: str = SQLField(sa_column=Column(String(4), nullable=False))
    quantity: int = SQLField(sa_column=Column(BigInteger, nullable=False))
    filled_quantity: int = SQLField(default=0, sa_column=Column(BigInteger, nullable=False))
    min_quantity: int | None = SQLField(default=None, sa_column=Column(BigInteger, nullable=True))
    limit_price_amount: Decimal = SQLField(sa_column=Column(Numeric(20, 4), nullable=False))
    limit_price_currency: str = SQLField(sa_column=Column(String(3), nullable=False))
    time_in_force: str = SQLField(sa_column=Column(String(3), nullable=False))
    expires_at: datetime | None = optional_timestamp_column()
    status: str = SQLField(default=OrderStatus.OPEN.value, sa_column=Column(String(20), nullable=False, index=True))
    status_reason: str | None = SQLField(default=None, sa_column=Column(String(200), nullable=True))
    priority: int = SQLField(sa_column=Column(BigInteger, nullable=False))
    version: int = SQLField(default=0, sa_column=Column(Integer, nullable=False))
    reservation_reference: str | None = SQLField(default=None, sa_column=Column(String(200), nullable=True))
    created_at: datetime = timestamp_column()
    updated_at: datetime = timestamp_column()


class Trade(SQLModel, table=True):
    """A match of a buy and a sell order; its id is also the id of the deal that executes it."""

    __tablename__ = "trade"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"), {"schema": SCHEMA})

    id: uuid.UUID = uuid_pk()
    deal_id: uuid.UUID = SQLField(nullable=False, unique=True)
    security_id: uuid.UUID = SQLField(nullable=False, index=True)
    company_id: uuid.UUID = SQLField(nullable=False)
    buy_order_id: uuid.UUID = SQLField(nullable=False, index=True)
    sell_order_id: uuid.UUID = SQLField(nullable=False, index=True)
    buyer_id: uuid.UUID = SQLField(nullable=False)
    seller_id: uuid.UUID = SQLField(nullable=False)
    quantity: int = SQLField(sa_column=Column(BigInteger, nullable=False))
    price_amount: Decimal = SQLField(sa_column=Column(Numeric(20, 4), nullable=False))
    price_currency: str = SQLField(sa_column=Column(String(3), nullable=False))
    status: str = SQLField(default=TradeStatus.MATCHED.value, sa_column=Column(String(16), nullable=False))
    matched_at: datetime = timestamp_column()
    closed_at: datetime | None = optional_timestamp_column()


class Fill(SQLModel, table=True):
    """The quantity one deal took from one order (given back once if the deal is cancelled)."""

    __tablename__ = "fill"
    __table_args__ = (
        UniqueConstraint("deal_id", "order_id", name="uq_fill_deal_order"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        {"schema": SCHEMA},
    )

    id: uuid.UUID = uuid_pk()
    deal_id: uuid.UUID = SQLField(nullable=False, index=True)
    order_id: uuid.UUID = SQLField(nullable=False, index=True)
    quantity: int = SQLField(sa_column=Column(BigInteger, nullable=False))
    status: str = SQLField(default=FillStatus.ACTIVE.value, sa_column=Column(String(16), nullable=False))
    created_at: datetime = timestamp_column()


# --- API / service schemas -------------------------------------------------------------------


class OrderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    security_id: uuid.UUID
    side: Side
    quantity: int
    limit_price: Money
    min_quantity: int | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    expires_at: datetime | None = None


class OrderUpdate(PatchModel):
    """An amendment: only the fields sent change."""

    quantity: int | None = None
    limit_price: Money | None = None


class OrderRead(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    security_id: uuid.UUID
    company_id: uuid.UUID
    side: Side
    quantity: int
    filled_quantity: int
    remaining_quantity: int
    min_quantity: int | None
    limit_price: Money
    time_in_force: TimeInForce
    expires_at: datetime | None
    status: OrderStatus
    status_reason: str | None = None
    workflow_id: str
    reservation_reference: str | None = None
    created_at: datetime
    updated_at: datetime


class OrderPage(BaseModel):
    items: list[OrderRead]
    next_cursor: str | None


class TradeRead(BaseModel):
    id: uuid.UUID
    deal_id: uuid.UUID
    security_id: uuid.UUID
    company_id: uuid.UUID
    buy_order_id: uuid.UUID
    sell_order_id: uuid.UUID
    buyer_id: uuid.UUID
    seller_id: uuid.UUID
    quantity: int
    price: Money
    status: TradeStatus
    matched_at: datetime


class BookLevel(BaseModel):
    price: Money
    quantity: int


class OrderBook(BaseModel):
    security_id: uuid.UUID
    bids: list[BookLevel]
    asks: list[BookLevel]


class Listing(BaseModel):
    security_id: uuid.UUID
    company_id: uuid.UUID
    company_name: str
    sector: str
    security_class: str
    best_ask: Money
    quantity_available: int
    orders: int


class ListingPage(BaseModel):
    items: list[Listing]
    next_cursor: str | None


class BidCandidate(BaseModel):
    """A resting bid a deal may use as its backup buyer."""

    order_id: uuid.UUID
    user_id: uuid.UUID
    security_id: uuid.UUID
    limit_price: Money
    remaining_quantity: int


class DealOrders(BaseModel):
    """The orders behind a deal, and the reservation holding the seller's shares."""

    trade: TradeRead
    buy_order: OrderRead
    sell_order: OrderRead
    seller_reservation_reference: str | None
    backup_buy_order_ids: list[uuid.UUID] = Field(default_factory=list)


# --- Workflow and activity inputs -------------------------------------------------------------


class OrderWorkflowInput(BaseModel):
    order_id: uuid.UUID
    user_id: uuid.UUID
    security_id: uuid.UUID
    side: Side
    status: OrderStatus
    filled_quantity: int = 0
    expires_at: datetime | None = None
    index: bool = True
    """Upsert search attributes (False only where none are registered, e.g. the time-skipping test server)."""
    attributes_at_start: bool = False
    """The start request carried the search attributes, so the first task need not upsert them again
    (False in histories recorded before starts carried them: those replay their first upsert)."""


class OrderRef(BaseModel):
    order_id: uuid.UUID


class CancelOrderInput(BaseModel):
    order_id: uuid.UUID
    user_id: uuid.UUID
    reason: str = "cancelled by owner"


class AmendOrderInput(BaseModel):
    order_id: uuid.UUID
    user_id: uuid.UUID
    quantity: int | None = None
    limit_price: Money | None = None


class OrderFilled(BaseModel):
    """Signal payload: matching filled (part of) this order."""

    order_id: uuid.UUID
    trade_id: uuid.UUID | None = None
    quantity: int = 0


def money_dict(amount: Decimal, currency: str) -> dict[str, Any]:
    return {"amount": format(amount.quantize(Decimal("0.0001")), "f"), "currency": currency}
