"""Payments context: the double-entry ledger, provider payments and the schemas around them.

Sign convention of `posting.amount`: a signed Numeric(20, 4) where a credit (money
arriving in the account) is positive and a debit (money leaving it) is negative.
An account's balance is the sum of its posted postings; every journal entry's
postings sum to zero per currency (checked by the service and, at commit, by the
deferred constraint trigger `posting_entry_balanced` of migration 0005_payments).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import Boolean, Column, ForeignKey, Index, Integer, Numeric, String, UniqueConstraint
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from models.base import Currency, Money, optional_timestamp_column, timestamp_column, uuid_pk

SCHEMA = "payments"
ZERO = Decimal("0.0000")


def _money_column(*, default: Decimal | None = ZERO, nullable: bool = False) -> Any:
    return SQLField(default=default, sa_column=Column(Numeric(20, 4), nullable=nullable))


class EntryStatus(StrEnum):
    PENDING = "pending"
    POSTED = "posted"
    VOIDED = "voided"
    EXPIRED = "expired"


class PaymentStatus(StrEnum):
    AWAITING_FUNDS = "awaiting_funds"
    PARTIALLY_FUNDED = "partially_funded"
    FUNDED = "funded"
    REFUNDED = "refunded"
    FAILED = "failed"


class Account(SQLModel, table=True):
    """A ledger account, one per (code, currency); its cached balances are updated with each posting.

    A code such as `external:bank` or `user:{id}:cash` exists once per currency it ever held, so
    money in one currency never mixes with another's (TigerBeetle's ledger, Formance's asset).
    """

    __tablename__ = "account"
    __table_args__ = (
        UniqueConstraint("code", "currency", name="uq_account_code_currency"),
        {"schema": SCHEMA},
    )

    id: uuid.UUID = uuid_pk()
    code: str = SQLField(sa_column=Column(String(200), nullable=False))
    currency: str = SQLField(sa_column=Column(String(3), nullable=False))
    kind: str = SQLField(sa_column=Column(String(32), nullable=False))
    allow_negative: bool = SQLField(default=False, sa_column=Column(Boolean, nullable=False))
    posted_balance: Decimal = _money_column()
    pending_debits: Decimal = _money_column()
    pending_credits: Decimal = _money_column()
    version: int = SQLField(default=0, sa_column=Column(Integer, nullable=False))
    created_at: datetime = timestamp_column()


class JournalEntry(SQLModel, table=True):
    """One balanced set of postings (linked legs), idempotent by `idempotency_key`."""

    __tablename__ = "journal_entry"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = uuid_pk()
    idempotency_key: str = SQLField(sa_column=Column(String(200), nullable=False, unique=True))
    fingerprint: str = SQLField(sa_column=Column(String(64), nullable=False))
    kind: str = SQLField(sa_column=Column(String(64), nullable=False))
    reference: str | None = SQLField(default=None, sa_column=Column(String(200), nullable=True, index=True))
    status: str = SQLField(sa_column=Column(String(16), nullable=False))
    created_at: datetime = timestamp_column()
    expires_at: datetime | None = optional_timestamp_column(index=True)
    posted_at: datetime | None = optional_timestamp_column()
    voided_at: datetime | None = optional_timestamp_column()


class Posting(SQLModel, table=True):
    """One signed leg on one account: credit positive, debit negative."""

    __tablename__ = "posting"
    __table_args__ = (
        Index("ix_posting_account_id", "account_id"),
        Index("ix_posting_entry_id", "entry_id"),
        {"schema": SCHEMA},
    )

    id: uuid.UUID = uuid_pk()
    entry_id: uuid.UUID = SQLField(
        sa_column=Column(ForeignKey(f"{SCHEMA}.journal_entry.id", ondelete="CASCADE"), nullable=False)
    )
    account_id: uuid.UUID = SQLField(sa_column=Column(ForeignKey(f"{SCHEMA}.account.id"), nullable=False))
    amount: Decimal = _money_column(default=None)
    currency: str = SQLField(sa_column=Column(String(3), nullable=False))


class Payment(SQLModel, table=True):
    """What a payer owes into a deal's escrow, and how much of it arrived."""

    __tablename__ = "payment"
    __table_args__ = (
        UniqueConstraint("deal_id", "payer_id", name="uq_payment_deal_id_payer_id"),
        {"schema": SCHEMA},
    )

    id: uuid.UUID = uuid_pk()
    deal_id: uuid.UUID = SQLField(index=True)
    payer_id: uuid.UUID
    amount: Decimal = _money_column(default=None)
    currency: str = SQLField(sa_column=Column(String(3), nullable=False))
    received_amount: Decimal = _money_column()
    """Cumulative amount moved into escrow for this payment (never above `amount`)."""
    escrowed_amount: Decimal = _money_column()
    """What of it escrow still holds (reduced by a refund or the release to the seller)."""
    status: str = SQLField(sa_column=Column(String(32), nullable=False))
    reference: str = SQLField(sa_column=Column(String(200), nullable=False))
    provider_ref: str | None = SQLField(default=None, sa_column=Column(String(200), nullable=True))
    created_at: datetime = timestamp_column()
    updated_at: datetime = timestamp_column()


class ProviderEvent(SQLModel, table=True):
    """Every provider callback we accepted, so a redelivered event id has no second effect."""

    __tablename__ = "provider_event"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = uuid_pk()
    event_id: str = SQLField(sa_column=Column(String(200), nullable=False, unique=True))
    payment_id: uuid.UUID = SQLField(index=True)
    status: str = SQLField(sa_column=Column(String(32), nullable=False))
    amount: Decimal = _money_column(default=None)
    currency: str = SQLField(sa_column=Column(String(3), nullable=False))
    received_at: datetime = timestamp_column()


# --- Schemas (not tables) -------------------------------------------------------------------------


class Leg(BaseModel):
    """One linked leg: `amount` moves from the `debit` account code to the `credit` account code."""

    debit: str = Field(min_length=1, max_length=200)
    credit: str = Field(min_length=1, max_length=200)
    amount: Money


class FundingInstructions(BaseModel):
    payment_id: uuid.UUID
    amount: Money
    reference: str


class PaymentUpdate(BaseModel):
    """The outcome of one provider event: what was applied and whether the deal is now fully funded."""

    payment_id: uuid.UUID
    deal_id: uuid.UUID
    payer_id: uuid.UUID
    status: PaymentStatus
    duplicate: bool
    applied: Money
    received: Money
    amount_due: Money
    refunded_excess: Money
    funded: bool
    newly_funded: bool


class SettlementResult(BaseModel):
    deal_id: uuid.UUID
    entry_id: uuid.UUID
    gross: Money
    seller_net: Money
    platform_fee: Money
    company_fee: Money


class RefundResult(BaseModel):
    deal_id: uuid.UUID
    refunded: Money
    entry_id: uuid.UUID | None
    payers: list[uuid.UUID]


class PaymentRead(BaseModel):
    id: uuid.UUID
    deal_id: uuid.UUID
    payer_id: uuid.UUID
    amount: Money
    received: Money
    status: PaymentStatus
    reference: str


class ProviderWebhook(BaseModel):
    """The body a payment provider posts to `/v1/payments/webhook` (HMAC-signed)."""

    event_id: str = Field(min_length=1, max_length=128)  # it goes into 200-character ledger idempotency keys
    payment_id: uuid.UUID
    status: Literal["succeeded", "failed"]
    amount: Money


class WebhookAck(BaseModel):
    status: Literal["applied", "duplicate"]
    payment_status: PaymentStatus
    funded: bool


class SandboxSettle(BaseModel):
    amount: Money | None = None
    status: Literal["succeeded", "failed"] = "succeeded"


class SandboxSettleAccepted(BaseModel):
    event_id: str
    payment_id: uuid.UUID
    status: Literal["succeeded", "failed"]
    amount: Money


class PaymentReceived(BaseModel):
    """Signal `payment_received` sent to the deal workflow `deal-{deal_id}` when escrow is funded."""

    payment_id: uuid.UUID
    deal_id: uuid.UUID
    amount: Money
    funded: bool


class AccountBalance(BaseModel):
    code: str
    currency: Currency
    posted: Decimal
    pending_debits: Decimal
    pending_credits: Decimal


class TrialBalance(BaseModel):
    """`ledger_balanced` holds only when every currency sums to zero; `ledger_total` is one currency's sum."""

    ledger_balanced: bool
    ledger_total: Money
    totals: dict[str, Decimal]
    """The posted sum of all accounts per currency (zero in each when balanced)."""
    accounts: list[AccountBalance]
    discrepancies: list[dict[str, Any]]
