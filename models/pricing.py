"""Pricing tables (schema `pricing`): trade prints, book quotes and funding-round prices, never overwritten.

Every row carries the time of the event that produced it (`at`), so any price can
be recomputed as of a past date from stored rows alone.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel
from sqlalchemy import BigInteger, DateTime, Index, Numeric, String
from sqlmodel import Column, SQLModel
from sqlmodel import Field as SQLField

from models.base import Money, timestamp_column, uuid_pk


class PrintSource(StrEnum):
    CLOSED_TRADE = "closed_trade"
    """A deal that settled (deals.closed): the strongest evidence of price."""
    MATCHED_TRADE = "matched_trade"
    """A marketplace match (marketplace.trade.matched): an indication, the deal may still fail."""


class PricePrint(SQLModel, table=True):
    __tablename__ = "price_print"
    __table_args__ = (
        Index("ix_price_print_security_source_at", "security_id", "source", "at"),
        {"schema": "pricing"},
    )

    id: uuid.UUID = uuid_pk()
    security_id: uuid.UUID = SQLField(nullable=False)
    company_id: uuid.UUID | None = SQLField(default=None, nullable=True)
    source: str = SQLField(sa_column=Column(String(32), nullable=False))
    price: Decimal = SQLField(sa_column=Column(Numeric(20, 4), nullable=False))
    currency: str = SQLField(sa_column=Column(String(3), nullable=False))
    quantity: int = SQLField(sa_column=Column(BigInteger, nullable=False))
    at: datetime = SQLField(sa_column=Column(DateTime(timezone=True), nullable=False))
    reference: str | None = SQLField(default=None, sa_column=Column(String(64), nullable=True))
    """The trade or deal id the print comes from."""
    event_id: uuid.UUID = SQLField(nullable=False, unique=True)
    created_at: datetime = timestamp_column()


class Quote(SQLModel, table=True):
    """A snapshot of the best bid and ask of a security's book (history, one row per book change)."""

    __tablename__ = "quote"
    __table_args__ = (Index("ix_quote_security_at", "security_id", "at"), {"schema": "pricing"})

    id: uuid.UUID = uuid_pk()
    security_id: uuid.UUID = SQLField(nullable=False)
    bid: Decimal | None = SQLField(default=None, sa_column=Column(Numeric(20, 4), nullable=True))
    bid_quantity: int | None = SQLField(default=None, sa_column=Column(BigInteger, nullable=True))
    ask: Decimal | None = SQLField(default=None, sa_column=Column(Numeric(20, 4), nullable=True))
    ask_quantity: int | None = SQLField(default=None, sa_column=Column(BigInteger, nullable=True))
    currency: str = SQLField(sa_column=Column(String(3), nullable=False))
    at: datetime = SQLField(sa_column=Column(DateTime(timezone=True), nullable=False))
    event_id: uuid.UUID = SQLField(nullable=False, unique=True)
    created_at: datetime = timestamp_column()


class RoundPrice(SQLModel, table=True):
    """A funding-round price: per company (applies to all its securities) or per security (its last round price)."""

    __tablename__ = "round_price"
    __table_args__ = (
        Index("ix_round_price_company_at", "company_id", "at"),
        Index("ix_round_price_security_at", "security_id", "at"),
        {"schema": "pricing"},
    )

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = SQLField(nullable=False)
    security_id: uuid.UUID | None = SQLField(default=None, nullable=True)
    price: Decimal = SQLField(sa_column=Column(Numeric(20, 4), nullable=False))
    currency: str = SQLField(sa_column=Column(String(3), nullable=False))
    at: datetime = SQLField(sa_column=Column(DateTime(timezone=True), nullable=False))
    event_id: uuid.UUID = SQLField(nullable=False, unique=True)
    created_at: datetime = timestamp_column()


class Candle(BaseModel):
    """One OHLC bucket; prices are decimal strings in the security's currency."""

    t: datetime
    open: str
    high: str
    low: str
    close: str
    volume: int


class ReferenceInput(BaseModel):
    source: str
    price: str
    quantity: int | None
    at: datetime
    weight: str


class ReferencePrice(BaseModel):
    security_id: uuid.UUID
    price: Money | None
    as_of: datetime
    method: str
    inputs: list[ReferenceInput]


class CompanyMetrics(BaseModel):
    company_id: uuid.UUID
    security_id: uuid.UUID | None
    as_of: datetime
    last_trade_price: Money | None
    last_trade_at: datetime | None
    implied_valuation: Money | None
    bid: Money | None
    ask: Money | None
    spread: Money | None
    last_round_price: Money | None
    discount_to_last_round: str | None
    """1 - price / last_round_price as a decimal fraction: positive = below the round (discount), negative = premium."""
    vwap_90d: Money | None
    reference_price: Money | None


class BacktestResult(BaseModel):
    security_id: uuid.UUID
    trades_evaluated: int
    mean_absolute_pct_error: str | None
    """Mean of |reference - next trade| / next trade over the evaluated trades, as a percentage string."""
