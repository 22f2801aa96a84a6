"""The deals context: the deal aggregate, its stage projection and timeline, and the workflow's messages.

The DealExecution workflow is the source of truth for progress; these tables are
its projection, updated by activities, so the API reads a deal without asking
the worker.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import BigInteger, Column, Identity, Numeric, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from models.base import Money, optional_timestamp_column, timestamp_column, uuid_pk
from models.companies import BlackoutWindow


class DealStage(StrEnum):
    CREATED = "created"
    PARTICIPANTS_CONFIRMED = "participants_confirmed"
    AWAITING_ISSUER = "awaiting_issuer"
    DOCUMENTS_GENERATED = "documents_generated"
    AWAITING_SIGNATURES = "awaiting_signatures"
    AWAITING_FUNDING = "awaiting_funding"
    SETTLING = "settling"
    CLOSED = "closed"
    CANCELLED = "cancelled"


TERMINAL_STAGES = frozenset({DealStage.CLOSED, DealStage.CANCELLED})


class IssuerDecision(StrEnum):
    WAIVE = "waive"
    APPROVE = "approve"
    EXERCISE = "exercise"
    REJECT = "reject"


MAX_DEADLINE_DAYS = 5 * 366
"""However long a company's blackouts, a deal's deadline lies within this many days."""


class FrozenTransferPolicy(BaseModel):
    """The company's transfer policy as it was when the deal started; later policy changes never reach it."""

    rofr_days: int = Field(default=30, ge=0, le=365)
    issuer_approval_required: bool = False
    rofr_lapse_is_waiver: bool = True
    rofr_exercise_substitutes_buyer: bool = True
    transfer_fee_bps: int = Field(default=0, ge=0, le=10_000)
    blackout_windows: list[BlackoutWindow] = Field(default_factory=list, max_length=100)
    """Known when the deal started: the issuer cannot confirm a transfer inside one."""

    def blackout_on(self, on_date: date) -> BlackoutWindow | None:
        """The window that forbids a transfer on `on_date`, if any."""
        return next((window for window in self.blackout_windows if window.covers(on_date)), None)

    def calendar_days_for(self, open_days: int, start: date) -> int:
        """Calendar days from `start` that hold `open_days` days outside every blackout window: a deadline for
        something a blackout forbids is pushed back by the blackout days it spans."""
        calendar_days = 0
        while open_days > 0 and calendar_days < MAX_DEADLINE_DAYS:
            if self.blackout_on(start + timedelta(days=calendar_days)) is None:
                open_days -= 1
            calendar_days += 1
        return calendar_days


class DealDeadlines(BaseModel):
    """How long each human step may take before the deal moves on or cancels."""

    signature_days: int = Field(default=7, ge=1)
    reminder_days: int = Field(default=2, ge=1)
    funding_days: int = Field(default=5, ge=1)
    settlement_days: int = Field(default=30, ge=1)


# -- tables ---------------------------------------------------------------------------


class Deal(SQLModel, table=True):
    __tablename__ = "deal"
    __table_args__ = {"schema": "deals"}

    id: uuid.UUID = uuid_pk()
    security_id: uuid.UUID = SQLField(index=True)
    company_id: uuid.UUID = SQLField(index=True)
    seller_id: uuid.UUID = SQLField(index=True)
    buyer_id: uuid.UUID = SQLField(index=True)
    original_buyer_id: uuid.UUID
    quantity: int
    price_amount: Decimal = SQLField(sa_column=Column(Numeric(20, 4), nullable=False))
    currency: str = SQLField(sa_column=Column(String(3), nullable=False))
    stage: str = SQLField(sa_column=Column(String(32), nullable=False, index=True))
    source: str = SQLField(sa_column=Column(String(16), nullable=False))
    buy_order_id: uuid.UUID | None = SQLField(default=None, index=True)
    sell_order_id: uuid.UUID | None = SQLField(default=None, index=True)
    reservation_reference: str = SQLField(sa_column=Column(String(128), nullable=False))
    policy: dict[str, Any] = SQLField(sa_column=Column(JSONB, nullable=False))
    defaulted_buyer_ids: list[str] = SQLField(default_factory=list, sa_column=Column(JSONB, nullable=False))
    created_by: uuid.UUID | None = None
    cancel_reason: str | None = SQLField(default=None, sa_column=Column(Text, nullable=True))
    on_hold: bool = False
    created_at: datetime = timestamp_column()
    updated_at: datetime = timestamp_column()
    closed_at: datetime | None = optional_timestamp_column()


class DealTimelineEntry(SQLModel, table=True):
    """One step of a deal's history, written once per workflow-issued id (retries add nothing)."""

    __tablename__ = "deal_timeline_entry"
    __table_args__ = (UniqueConstraint("event_key", name="uq_deal_timeline_entry_event_key"), {"schema": "deals"})

    seq: int | None = SQLField(default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True))
    deal_id: uuid.UUID = SQLField(index=True)
    event_key: str = SQLField(sa_column=Column(String(128), nullable=False))
    stage: str = SQLField(sa_column=Column(String(32), nullable=False))
    actor: str = SQLField(sa_column=Column(String(128), nullable=False))
    detail: str = SQLField(sa_column=Column(Text, nullable=False))
    at: datetime = timestamp_column()


# -- API shapes -----------------------------------------------------------------------


class DealCreate(BaseModel):
    security_id: uuid.UUID
    seller_id: uuid.UUID
    buyer_id: uuid.UUID
    quantity: int = Field(gt=0, le=1_000_000_000)
    price: Money


class TimelineRead(BaseModel):
    stage: str
    at: datetime
    actor: str
    detail: str


class ParticipantRead(BaseModel):
    user_id: uuid.UUID
    role: str


class DealRead(BaseModel):
    id: uuid.UUID
    workflow_id: str
    stage: DealStage
    security_id: uuid.UUID
    company_id: uuid.UUID
    quantity: int
    price: Money
    total: Money
    buyer_id: uuid.UUID
    seller_id: uuid.UUID
    original_buyer_id: uuid.UUID
    source: str
    buy_order_id: uuid.UUID | None
    sell_order_id: uuid.UUID | None
    on_hold: bool
    cancel_reason: str | None
    participants: list[ParticipantRead]
    documents: list[dict[str, Any]] = Field(default_factory=list)
    payments: list[dict[str, Any]] = Field(default_factory=list)
    timeline: list[TimelineRead] = Field(default_factory=list)
    created_at: datetime
    closed_at: datetime | None


class IssuerDecisionRequest(BaseModel):
    decision: IssuerDecision
    reason: str | None = Field(default=None, max_length=2000)


class CancelRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


# -- workflow messages ----------------------------------------------------------------


class DealWorkflowInput(BaseModel):
    deal_id: uuid.UUID
    security_id: uuid.UUID
    company_id: uuid.UUID
    seller_id: uuid.UUID
    buyer_id: uuid.UUID
    quantity: int
    price: Money
    policy: FrozenTransferPolicy
    reservation_reference: str
    buy_order_id: uuid.UUID | None = None
    sell_order_id: uuid.UUID | None = None
    deadlines: DealDeadlines = Field(default_factory=DealDeadlines)
    index_search_attributes: bool = True
    """Off only under the time-skipping test server, which cannot register custom search attributes."""


class IssuerDecisionInput(BaseModel):
    decision: IssuerDecision
    actor_id: uuid.UUID
    reason: str | None = None


class CancelInput(BaseModel):
    reason: str
    actor_id: uuid.UUID


class SettlementConfirmation(BaseModel):
    actor_id: uuid.UUID


class HoldInput(BaseModel):
    actor_id: uuid.UUID
    reason: str


class DealState(BaseModel):
    """What the workflow knows (its query answer)."""

    deal_id: uuid.UUID
    stage: DealStage
    buyer_id: uuid.UUID
    on_hold: bool
    issuer_decision: IssuerDecision | None = None
    funded: bool = False
    signed_documents: list[uuid.UUID] = Field(default_factory=list)
    pending_documents: list[uuid.UUID] = Field(default_factory=list)
    defaulted_buyers: list[uuid.UUID] = Field(default_factory=list)
    cancel_reason: str | None = None
    next_actor: str | None = None
    deadline: datetime | None = None


class StageChange(BaseModel):
    deal_id: uuid.UUID
    event_key: str
    stage: DealStage
    actor: str
    detail: str
    buyer_id: uuid.UUID | None = None
    on_hold: bool | None = None
    cancel_reason: str | None = None
    next_actor: str | None = None
    deadline: datetime | None = None


class DealRef(BaseModel):
    deal_id: uuid.UUID
    reason: str = ""


class ParticipantsCheck(BaseModel):
    deal_id: uuid.UUID
    buyer_id: uuid.UUID
    seller_id: uuid.UUID
    reservation_reference: str
    quantity: int


class CheckResult(BaseModel):
    ok: bool
    reasons: list[str] = Field(default_factory=list)


class DocumentsRequest(BaseModel):
    deal_id: uuid.UUID
    kinds: list[str]
    buyer_id: uuid.UUID


class GeneratedDocuments(BaseModel):
    document_ids: list[uuid.UUID]


class FundingRequest(BaseModel):
    deal_id: uuid.UUID
    payer_id: uuid.UUID


class BackupBuyer(BaseModel):
    buyer_id: uuid.UUID
    order_id: uuid.UUID


class SettleRequest(BaseModel):
    deal_id: uuid.UUID
    buyer_id: uuid.UUID
