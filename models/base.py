"""Shared table conventions: constraint names, UTC timestamps, UUID keys, Money."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_serializer, field_validator
from sqlalchemy import DateTime, MetaData, func
from sqlmodel import Column, SQLModel
from sqlmodel import Field as SQLField


def _one_line(value: str) -> str:
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value):  # format characters (ZWNJ) are fine
        raise ValueError("must be one line of printable text (no line breaks or control characters)")
    return value


OneLine = Annotated[str, AfterValidator(_one_line)]
"""Text that goes into a line of something else (an email header, a PDF line): no control characters."""

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata

SCHEMAS = (
    "platform",
    "diagnostics",
    "identity",
    "profiles",
    "companies",
    "holdings",
    "marketplace",
    "deals",
    "documents",
    "payments",
    "pricing",
    "notifications",
    "admin",
    "indexing",
)
"""One schema per bounded context, plus `platform` for the outbox and idempotency records."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def uuid_pk() -> Any:
    return SQLField(default_factory=uuid.uuid4, primary_key=True)


def timestamp_column(*, index: bool = False) -> Any:
    """A required timezone-aware `timestamptz`, set by Python or, for bulk inserts, by the database."""
    return SQLField(
        default_factory=utcnow,
        sa_column=Column(DateTime(timezone=True), nullable=False, index=index, server_default=func.now()),
    )


def optional_timestamp_column(*, index: bool = False) -> Any:
    return SQLField(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=True, index=index),
    )


Currency = Annotated[str, Field(pattern="^[A-Z]{3}$", examples=["USD"])]


class Money(BaseModel):
    """A decimal amount with its ISO 4217 currency; serialised as a string, never a float."""

    model_config = ConfigDict(frozen=True)

    amount: Decimal = Field(max_digits=20, decimal_places=4, allow_inf_nan=False)
    currency: Currency = "USD"

    @field_serializer("amount")
    def _amount_as_string(self, amount: Decimal) -> str:
        return format(amount, "f")


class PatchModel(BaseModel):
    """A partial update: only the fields sent change, and a field left out keeps its value.

    An explicit null clears a field only where that means something (`clearable`); anywhere else
    it is a validation error rather than an attempt to empty a required column.
    """

    model_config = ConfigDict(extra="forbid")
    clearable: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _null_only_where_clearable(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in cls.clearable:
            raise ValueError("cannot be null; leave the field out to keep its value")
        return value
