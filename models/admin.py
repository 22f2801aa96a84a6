"""The append-only, hash-chained audit log of the admin context."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from pydantic import Field as PydField
from sqlalchemy import BigInteger, Column, Identity, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.base import optional_timestamp_column, timestamp_column, uuid_pk


class AuditEntry(SQLModel, table=True):
    """One security or compliance event; `hash` chains it to the previous entry, so edits are detectable."""

    __tablename__ = "audit_entry"
    __table_args__ = {"schema": "admin"}

    seq: int | None = Field(
        default=None,
        sa_column=Column(BigInteger, Identity(always=True), nullable=False, unique=True, index=True),
    )
    id: uuid.UUID = uuid_pk()
    at: datetime = timestamp_column()
    actor_id: uuid.UUID | None = Field(default=None, nullable=True, index=True)
    action: str = Field(sa_column=Column(String(128), nullable=False, index=True))
    entity_type: str = Field(sa_column=Column(String(64), nullable=False))
    entity_id: str | None = Field(default=None, sa_column=Column(String(128), nullable=True, index=True))
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    prev_hash: str = Field(sa_column=Column(String(64), nullable=False))
    hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))


class AuditEntryRead(BaseModel):
    seq: int
    id: uuid.UUID
    at: datetime
    actor_id: uuid.UUID | None
    action: str
    entity_type: str
    entity_id: str | None
    data: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    items: list[AuditEntryRead]
    next_cursor: str | None = None


class VerifyResult(BaseModel):
    ok: bool
    entries: int
    broken_at_seq: int | None = None
    detail: str | None = None


class AccountFreeze(SQLModel, table=True):
    """A compliance freeze of one account: while `lifted_at` is null the account may not trade."""

    __tablename__ = "account_freeze"
    __table_args__ = {"schema": "admin"}

    id: uuid.UUID = uuid_pk()
    user_id: uuid.UUID = Field(index=True)
    reason: str = Field(sa_column=Column(String(2000), nullable=False))
    frozen_by: uuid.UUID | None = Field(default=None, nullable=True)
    frozen_at: datetime = timestamp_column()
    lifted_by: uuid.UUID | None = Field(default=None, nullable=True)
    lifted_at: datetime | None = optional_timestamp_column()
    lift_reason: str | None = Field(default=None, sa_column=Column(String(2000), nullable=True))


class ReasonRequest(BaseModel):
    reason: str = PydField(min_length=1, max_length=2000)


class OptionalReason(BaseModel):
    reason: str | None = PydField(default=None, max_length=2000)


class FreezeRead(BaseModel):
    user_id: uuid.UUID
    frozen: bool
    reason: str | None = None
    frozen_at: datetime | None = None
    lifted_at: datetime | None = None
    sessions_revoked: int = 0
    orders_cancelled: int = 0
    """Resting orders of the account cancelled by this freeze (their reserved shares are released)."""
    deals_held: int = 0
    """Open deals of the account put on hold by this freeze: no money or shares move until compliance lifts
    each hold (unfreezing the account lifts none)."""


class QueueItem(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    kind: str
    status: str
    submitted_at: datetime
    age_seconds: int
    sla_seconds: int
    overdue: bool


class ReviewQueues(BaseModel):
    kyc_escalations: list[QueueItem]
    accreditations: list[QueueItem]
    holding_verifications: list[QueueItem]


class StuckDeal(BaseModel):
    deal_id: uuid.UUID
    stage: str
    stage_since: datetime
    age_seconds: int
    sla_seconds: int
    on_hold: bool


class HistoryEvent(BaseModel):
    at: datetime
    source: str
    """`workflow` (Temporal history), `audit` (admin audit log) or `timeline` (deal projection)."""
    kind: str
    name: str | None = None
    detail: str | None = None
    event_id: int | None = None


class DealHistory(BaseModel):
    deal_id: uuid.UUID
    as_of: datetime | None
    events: list[HistoryEvent]


class RetryReport(BaseModel):
    deal_id: uuid.UUID
    status: str
    pending_activities: list[dict[str, Any]]
    retried: list[str] = PydField(default_factory=list)
    """The failing activities that were reset to run again at once."""
    detail: str
