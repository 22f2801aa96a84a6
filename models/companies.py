"""Companies context: issuers, their securities (share classes), funding rounds and transfer policy.

The transfer policy lives on the company as a JSONB snapshot of `TransferPolicy`
so deals can freeze exactly what applied when they started.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, UrlConstraints, field_validator, model_validator
from sqlalchemy import BigInteger, Boolean, Column, Date, ForeignKey, Numeric, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from models.base import Money, PatchModel, timestamp_column, uuid_pk

PLATFORM_FEE_BPS = 100
"""The platform's fee on the seller's proceeds (1%)."""
MAX_TRANSFER_FEE_BPS = 10_000 - PLATFORM_FEE_BPS
"""A company's transfer fee and the platform's together never exceed what the buyer paid."""

SCHEMA = "companies"


WEBSITE_MAX_LENGTH = 490
"""The column holds 500 characters; normalising a URL (a trailing slash, punycode) can lengthen it a little."""
Website = Annotated[HttpUrl, UrlConstraints(max_length=WEBSITE_MAX_LENGTH)]


class SecurityKind(StrEnum):
    COMMON = "common"
    PREFERRED = "preferred"


# --- value objects ---------------------------------------------------------------------------


class BlackoutWindow(BaseModel):
    """Dates (inclusive) during which the company allows no transfer, e.g. around a financing."""

    model_config = ConfigDict(extra="forbid")

    start_date: date
    end_date: date

    @model_validator(mode="after")
    def _ordered(self) -> BlackoutWindow:
        if self.end_date < self.start_date:
            raise ValueError("end_date must not be before start_date")
        return self

    def covers(self, on_date: date) -> bool:
        return self.start_date <= on_date <= self.end_date


class TransferPolicy(BaseModel):
    """The company's rules for secondary transfers; frozen into each deal when it starts."""

    model_config = ConfigDict(extra="forbid")

    rofr_days: int = Field(default=30, ge=0, le=365)
    issuer_approval_required: bool = False
    rofr_lapse_is_waiver: bool = True
    rofr_exercise_substitutes_buyer: bool = True
    lock_up_until: date | None = None
    minimum_transfer_shares: int | None = Field(default=None, gt=0)
    blackout_windows: list[BlackoutWindow] = Field(default_factory=list, max_length=100)
    transfer_fee_bps: int = Field(default=0, ge=0, le=MAX_TRANSFER_FEE_BPS)


class TransferPolicyPatch(PatchModel):
    """A partial transfer policy: only the fields sent are changed."""

    clearable = frozenset({"lock_up_until", "minimum_transfer_shares"})

    rofr_days: int | None = Field(default=None, ge=0, le=365)
    issuer_approval_required: bool | None = None
    rofr_lapse_is_waiver: bool | None = None
    rofr_exercise_substitutes_buyer: bool | None = None
    lock_up_until: date | None = None
    minimum_transfer_shares: int | None = Field(default=None, gt=0)
    blackout_windows: list[BlackoutWindow] | None = Field(default=None, max_length=100)
    transfer_fee_bps: int | None = Field(default=None, ge=0, le=MAX_TRANSFER_FEE_BPS)


# --- tables ----------------------------------------------------------------------------------


def _money_amount(nullable: bool) -> Any:
    return SQLField(default=None, sa_column=Column(Numeric(20, 4), nullable=nullable))


def _currency(nullable: bool) -> Any:
    return SQLField(default=None, sa_column=Column(String(3), nullable=nullable))


class Company(SQLModel, table=True):
    __tablename__ = "company"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = uuid_pk()
    name: str = SQLField(sa_column=Column(String(200), nullable=False, index=True))
    legal_name: str = SQLField(sa_column=Column(String(300), nullable=False))
    jurisdiction: str = SQLField(sa_column=Column(String(100), nullable=False))
    sector: str = SQLField(sa_column=Column(String(100), nullable=False, index=True))
    website: str | None = SQLField(default=None, sa_column=Column(String(500), nullable=True))
    description: str | None = SQLField(default=None, sa_column=Column(Text, nullable=True))
    fully_diluted_shares: int = SQLField(sa_column=Column(BigInteger, nullable=False))
    transfer_policy: dict[str, Any] = SQLField(sa_column=Column(JSONB, nullable=False))
    cap_table_references: list[str] = SQLField(default_factory=list, sa_column=Column(JSONB, nullable=False))
    created_at: datetime = timestamp_column()
    updated_at: datetime = timestamp_column()


class FundingRound(SQLModel, table=True):
    __tablename__ = "funding_round"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = SQLField(sa_column=Column(ForeignKey(f"{SCHEMA}.company.id"), nullable=False, index=True))
    round_name: str = SQLField(sa_column=Column(String(100), nullable=False))
    round_date: date = SQLField(sa_column=Column(Date, nullable=False))
    price_per_share_amount: Decimal = _money_amount(False)
    price_per_share_currency: str = _currency(False)
    amount_raised_amount: Decimal = _money_amount(False)
    amount_raised_currency: str = _currency(False)
    post_money_valuation_amount: Decimal = _money_amount(False)
    post_money_valuation_currency: str = _currency(False)
    created_at: datetime = timestamp_column()


class Security(SQLModel, table=True):
    __tablename__ = "security"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = SQLField(sa_column=Column(ForeignKey(f"{SCHEMA}.company.id"), nullable=False, index=True))
    class_name: str = SQLField(sa_column=Column(String(200), nullable=False))
    kind: str = SQLField(sa_column=Column(String(16), nullable=False))
    last_round_price_amount: Decimal | None = _money_amount(True)
    last_round_price_currency: str | None = _currency(True)
    tradable: bool = SQLField(default=True, sa_column=Column(Boolean, nullable=False))
    created_at: datetime = timestamp_column()
    updated_at: datetime = timestamp_column()


# --- API / service schemas -------------------------------------------------------------------


class CompanyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    legal_name: str = Field(min_length=1, max_length=300)
    jurisdiction: str = Field(min_length=2, max_length=100)
    sector: str = Field(min_length=1, max_length=100)
    website: Website | None = None
    description: str | None = Field(default=None, max_length=10_000)
    fully_diluted_shares: int = Field(gt=0, le=10**15)
    transfer_policy: TransferPolicy = Field(default_factory=TransferPolicy)
    cap_table_references: list[str] = Field(default_factory=list, max_length=50)


class CompanyUpdate(PatchModel):
    clearable = frozenset({"website", "description"})

    name: str | None = Field(default=None, min_length=1, max_length=200)
    legal_name: str | None = Field(default=None, min_length=1, max_length=300)
    jurisdiction: str | None = Field(default=None, min_length=2, max_length=100)
    sector: str | None = Field(default=None, min_length=1, max_length=100)
    website: Website | None = None
    description: str | None = Field(default=None, max_length=10_000)
    fully_diluted_shares: int | None = Field(default=None, gt=0, le=10**15)
    transfer_policy: TransferPolicyPatch | None = None
    cap_table_references: list[str] | None = Field(default=None, max_length=50)


class FundingRoundCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    round_name: str = Field(min_length=1, max_length=100)
    round_date: date
    price_per_share: Money
    amount_raised: Money
    post_money_valuation: Money

    @model_validator(mode="after")
    def _positive(self) -> FundingRoundCreate:
        for name in ("price_per_share", "amount_raised", "post_money_valuation"):
            if getattr(self, name).amount <= 0:
                raise ValueError(f"{name} must be positive")
        if len({self.price_per_share.currency, self.amount_raised.currency, self.post_money_valuation.currency}) > 1:
            raise ValueError("a round's price, amount raised and valuation are in one currency")
        return self


class FundingRoundRead(BaseModel):
    id: uuid.UUID
    company_id: uuid.UUID
    round_name: str
    round_date: date
    price_per_share: Money
    amount_raised: Money
    post_money_valuation: Money
    created_at: datetime


class SecurityCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    class_name: str = Field(min_length=1, max_length=200)
    kind: SecurityKind
    last_round_price: Money | None = None
    tradable: bool = True

    @field_validator("last_round_price")
    @classmethod
    def _positive_price(cls, price: Money | None) -> Money | None:
        return _positive(price)


class SecurityUpdate(PatchModel):
    clearable = frozenset({"last_round_price"})

    class_name: str | None = Field(default=None, min_length=1, max_length=200)
    last_round_price: Money | None = None
    tradable: bool | None = None

    @field_validator("last_round_price")
    @classmethod
    def _positive_price(cls, price: Money | None) -> Money | None:
        return _positive(price)


def _positive(price: Money | None) -> Money | None:
    """A share price (it sets the security's trading currency and its metrics) is above zero."""
    if price is not None and price.amount <= 0:
        raise ValueError("last_round_price must be positive")
    return price


class SecurityRead(BaseModel):
    id: uuid.UUID
    company_id: uuid.UUID
    class_name: str
    kind: SecurityKind
    last_round_price: Money | None
    tradable: bool
    created_at: datetime


class CompanyRead(BaseModel):
    id: uuid.UUID
    name: str
    legal_name: str
    jurisdiction: str
    sector: str
    website: str | None
    description: str | None
    fully_diluted_shares: int
    transfer_policy: TransferPolicy
    cap_table_references: list[str]
    created_at: datetime
    updated_at: datetime


class CompanyDetail(CompanyRead):
    securities: list[SecurityRead]
    funding_rounds: list[FundingRoundRead]


class CompanyPage(BaseModel):
    items: list[CompanyRead]
    next_cursor: str | None
