"""Holdings context: positions (one per lot) of an owner in a security, and the movement ledger.

Every change of a position is a `Movement` row; a position's `quantity` and
`reserved_quantity` are caches of sums over its movements, kept in the same
transaction and checked by the conservation report:

    quantity          = deposit + transfer_in - transfer_out
    reserved_quantity = reserve - release - transfer_out   (shares leave only from a reservation)

Transfers keep lineage like the Open Cap Format's StockTransfer: the source
position, the quantity, the resulting position of the buyer and the balance
position of the seller.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import BigInteger, CheckConstraint, Column, Date, ForeignKey, Index, Numeric, String, Text
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from models.base import Money, optional_timestamp_column, timestamp_column, uuid_pk

SCHEMA = "holdings"


class HoldingStatus(StrEnum):
    PENDING_VERIFICATION = "pending_verification"
    VERIFIED = "verified"
    REJECTED = "rejected"


class MovementKind(StrEnum):
    DEPOSIT = "deposit"
    RESERVE = "reserve"
    RELEASE = "release"
    TRANSFER_OUT = "transfer_out"
    TRANSFER_IN = "transfer_in"


class ReservationStatus(StrEnum):
    ACTIVE = "active"
    RELEASED = "released"
    CONSUMED = "consumed"


class Provenance(StrEnum):
    DEPOSIT = "deposit"
    TRANSFER = "transfer"


def _nullable_amount() -> Any:
    return SQLField(default=None, sa_column=Column(Numeric(20, 4), nullable=True))


def _nullable_currency() -> Any:
    return SQLField(default=None, sa_column=Column(String(3), nullable=True))


class Holding(SQLModel, table=True):
    """One lot held by one owner in one security (acquisition date and cost basis per lot)."""

    __tablename__ = "holding"
    __table_args__ = (
        CheckConstraint("quantity >= 0", name="quantity_not_negative"),
        CheckConstraint("reserved_quantity >= 0 AND reserved_quantity <= quantity", name="reserved_within_quantity"),
        Index("ix_holding_owner_security", "owner_id", "security_id"),
        {"schema": SCHEMA},
    )

    id: uuid.UUID = uuid_pk()
    owner_id: uuid.UUID = SQLField(nullable=False)
    security_id: uuid.UUID = SQLField(nullable=False, index=True)
    company_id: uuid.UUID = SQLField(nullable=False, index=True)
    status: str = SQLField(
        default=HoldingStatus.PENDING_VERIFICATION.value, sa_column=Column(String(32), nullable=False, index=True)
    )
    quantity: int = SQLField(default=0, sa_column=Column(BigInteger, nullable=False))
    reserved_quantity: int = SQLField(default=0, sa_column=Column(BigInteger, nullable=False))
    cost_basis_amount: Decimal | None = _nullable_amount()
    cost_basis_currency: str | None = _nullable_currency()
    acquisition_date: date | None = SQLField(default=None, sa_column=Column(Date, nullable=True))
    provenance: str = SQLField(default=Provenance.DEPOSIT.value, sa_column=Column(String(16), nullable=False))
    source_transfer_id: uuid.UUID | None = SQLField(default=None, nullable=True)
    decided_by: uuid.UUID | None = SQLField(default=None, nullable=True)
    decided_at: datetime | None = optional_timestamp_column()
    decision_reason: str | None = SQLField(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = timestamp_column()
    updated_at: datetime = timestamp_column()


class Reservation(SQLModel, table=True):
    """Shares set aside for a sale in flight (an order or a deal), identified by the caller's reference."""

    __tablename__ = "reservation"
    __table_args__ = (
        CheckConstraint("released_quantity + consumed_quantity <= quantity", name="within_quantity"),
        {"schema": SCHEMA},
    )

    id: uuid.UUID = uuid_pk()
    reference: str = SQLField(sa_column=Column(String(200), nullable=False, unique=True))
    owner_id: uuid.UUID = SQLField(nullable=False, index=True)
    security_id: uuid.UUID = SQLField(nullable=False, index=True)
    quantity: int = SQLField(sa_column=Column(BigInteger, nullable=False))
    released_quantity: int = SQLField(default=0, sa_column=Column(BigInteger, nullable=False))
    consumed_quantity: int = SQLField(default=0, sa_column=Column(BigInteger, nullable=False))
    status: str = SQLField(default=ReservationStatus.ACTIVE.value, sa_column=Column(String(16), nullable=False))
    created_at: datetime = timestamp_column()
    updated_at: datetime = timestamp_column()


class Movement(SQLModel, table=True):
    """One ledger line: the only way a position's quantities change."""

    __tablename__ = "movement"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        {"schema": SCHEMA},
    )

    id: uuid.UUID = uuid_pk()
    holding_id: uuid.UUID = SQLField(sa_column=Column(ForeignKey(f"{SCHEMA}.holding.id"), nullable=False, index=True))
    owner_id: uuid.UUID = SQLField(nullable=False)
    security_id: uuid.UUID = SQLField(nullable=False, index=True)
    kind: str = SQLField(sa_column=Column(String(16), nullable=False))
    quantity: int = SQLField(sa_column=Column(BigInteger, nullable=False))
    reservation_id: uuid.UUID | None = SQLField(
        default=None, sa_column=Column(ForeignKey(f"{SCHEMA}.reservation.id"), nullable=True, index=True)
    )
    transfer_id: uuid.UUID | None = SQLField(default=None, nullable=True)
    reference: str | None = SQLField(default=None, sa_column=Column(String(200), nullable=True))
    idempotency_key: str = SQLField(sa_column=Column(String(300), nullable=False, unique=True))
    created_at: datetime = timestamp_column()


class Transfer(SQLModel, table=True):
    """A completed sale of shares from a seller to a buyer for one deal (idempotent per deal)."""

    __tablename__ = "transfer"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = uuid_pk()
    deal_id: uuid.UUID = SQLField(nullable=False, unique=True)
    reservation_id: uuid.UUID = SQLField(sa_column=Column(ForeignKey(f"{SCHEMA}.reservation.id"), nullable=False))
    security_id: uuid.UUID = SQLField(nullable=False, index=True)
    seller_id: uuid.UUID = SQLField(nullable=False)
    buyer_id: uuid.UUID = SQLField(nullable=False)
    quantity: int = SQLField(sa_column=Column(BigInteger, nullable=False))
    price_amount: Decimal = SQLField(sa_column=Column(Numeric(20, 4), nullable=False))
    price_currency: str = SQLField(sa_column=Column(String(3), nullable=False))
    resulting_holding_id: uuid.UUID = SQLField(sa_column=Column(ForeignKey(f"{SCHEMA}.holding.id"), nullable=False))
    created_at: datetime = timestamp_column()


class TransferLeg(SQLModel, table=True):
    """The part of a transfer taken from one source lot, with the seller's balance position."""

    __tablename__ = "transfer_leg"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = uuid_pk()
    transfer_id: uuid.UUID = SQLField(sa_column=Column(ForeignKey(f"{SCHEMA}.transfer.id"), nullable=False, index=True))
    source_holding_id: uuid.UUID = SQLField(sa_column=Column(ForeignKey(f"{SCHEMA}.holding.id"), nullable=False))
    quantity: int = SQLField(sa_column=Column(BigInteger, nullable=False))
    balance_holding_id: uuid.UUID | None = SQLField(default=None, nullable=True)
    balance_quantity: int = SQLField(sa_column=Column(BigInteger, nullable=False))


# --- API / service schemas -------------------------------------------------------------------


class HoldingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    security_id: uuid.UUID
    quantity: int = Field(gt=0, le=10**15)
    cost_basis: Money | None = None
    acquisition_date: date | None = None

    @field_validator("cost_basis")
    @classmethod
    def _not_negative(cls, value: Money | None) -> Money | None:
        if value is not None and value.amount < 0:
            raise ValueError("cost_basis must not be negative")
        return value

    @field_validator("acquisition_date")
    @classmethod
    def _not_in_the_future(cls, value: date | None) -> date | None:
        """Shares already held were acquired by today (anywhere on Earth: a day of slack past UTC)."""
        if value is not None and value > datetime.now(UTC).date() + timedelta(days=1):
            raise ValueError("acquisition_date must not be in the future")
        return value


class HoldingDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=2000)


class LotRead(BaseModel):
    quantity: int
    cost_basis: Money | None
    acquisition_date: date | None


class HoldingRead(BaseModel):
    id: uuid.UUID
    owner_id: uuid.UUID
    security_id: uuid.UUID
    company_id: uuid.UUID
    quantity: int
    reserved_quantity: int
    available_quantity: int
    status: HoldingStatus
    cost_basis: Money | None
    acquisition_date: date | None
    provenance: Provenance
    source_transfer_id: uuid.UUID | None
    lots: list[LotRead]
    decided_at: datetime | None
    decision_reason: str | None
    created_at: datetime
    updated_at: datetime


class HoldingPage(BaseModel):
    items: list[HoldingRead]
    next_cursor: str | None


class MovementRead(BaseModel):
    id: uuid.UUID
    holding_id: uuid.UUID
    owner_id: uuid.UUID
    security_id: uuid.UUID
    kind: MovementKind
    quantity: int
    reservation_id: uuid.UUID | None
    transfer_id: uuid.UUID | None
    reference: str | None
    created_at: datetime


class MovementPage(BaseModel):
    items: list[MovementRead]
    next_cursor: str | None


class ReservationRead(BaseModel):
    id: uuid.UUID
    reference: str
    owner_id: uuid.UUID
    security_id: uuid.UUID
    quantity: int
    released_quantity: int
    consumed_quantity: int
    outstanding_quantity: int
    status: ReservationStatus


class TransferLegRead(BaseModel):
    source_holding_id: uuid.UUID
    quantity: int
    balance_holding_id: uuid.UUID | None
    balance_quantity: int


class TransferRecord(BaseModel):
    id: uuid.UUID
    deal_id: uuid.UUID
    reservation_id: uuid.UUID
    security_id: uuid.UUID
    seller_id: uuid.UUID
    buyer_id: uuid.UUID
    quantity: int
    price: Money
    resulting_holding_id: uuid.UUID
    legs: list[TransferLegRead]
    created_at: datetime


class Discrepancy(BaseModel):
    kind: str
    security_id: uuid.UUID | None = None
    holding_id: uuid.UUID | None = None
    detail: str
    expected: int | None = None
    actual: int | None = None


class SecurityShares(BaseModel):
    security_id: uuid.UUID
    deposited_verified: int
    verified_total: int
    transferred_out: int
    transferred_in: int
    reserved_total: int


class ConservationReport(BaseModel):
    shares_conserved: bool
    securities: list[SecurityShares]
    discrepancies: list[Discrepancy]
