"""Profiles tables (profile, KYC checks, accreditations) and the types passed to API, services and workflows."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Column, Date, DateTime, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from models.base import optional_timestamp_column, timestamp_column, uuid_pk

KycStatus = Literal["not_started", "pending", "approved", "rejected", "manual_review"]
AccreditationStatus = Literal["none", "pending_review", "approved", "rejected", "expired"]
AccreditationMethod = Literal["income", "net_worth", "professional_license", "entity_assets"]
ProfileKind = Literal["individual", "entity"]
EntityType = Literal["corporation", "llc", "partnership", "trust", "fund", "other"]
CountryCode = Field(pattern="^[A-Z]{2}$", examples=["US"])

ACCREDITATION_VALIDITY = timedelta(days=90)
KYC_PROVIDER_TIMEOUT = timedelta(days=2)


class Profile(SQLModel, table=True):
    """An investor's profile: an individual, or an entity with its KYB details."""

    __tablename__ = "profile"
    __table_args__ = {"schema": "profiles"}

    user_id: uuid.UUID = SQLField(primary_key=True)
    kind: str = SQLField(sa_column=Column(String(16), nullable=False))
    name: str = SQLField(sa_column=Column(String(200), nullable=False))
    residence_country: str = SQLField(sa_column=Column(String(2), nullable=False))
    contact_email: str | None = SQLField(default=None, sa_column=Column(String(320), nullable=True))
    phone: str | None = SQLField(default=None, sa_column=Column(String(32), nullable=True))
    entity_type: str | None = SQLField(default=None, sa_column=Column(String(32), nullable=True))
    kyb: dict[str, Any] | None = SQLField(default=None, sa_column=Column(JSONB, nullable=True))
    created_at: datetime = timestamp_column()
    updated_at: datetime = timestamp_column()


class KycCheck(SQLModel, table=True):
    """One KYC submission and its outcome; the newest per user is the user's KYC status."""

    __tablename__ = "kyc_check"
    __table_args__ = {"schema": "profiles"}

    id: uuid.UUID = uuid_pk()
    user_id: uuid.UUID = SQLField(index=True)
    status: str = SQLField(sa_column=Column(String(32), nullable=False))
    legal_name: str = SQLField(sa_column=Column(String(200), nullable=False))
    date_of_birth: date = SQLField(sa_column=Column(Date, nullable=False))
    country: str = SQLField(sa_column=Column(String(2), nullable=False))
    tax_id_last4: str = SQLField(sa_column=Column(String(4), nullable=False))
    provider_ref: str | None = SQLField(default=None, sa_column=Column(String(128), nullable=True))
    reason: str | None = SQLField(default=None, sa_column=Column(String(500), nullable=True))
    reviewer_id: uuid.UUID | None = SQLField(default=None, nullable=True)
    created_at: datetime = timestamp_column(index=True)
    decided_at: datetime | None = optional_timestamp_column()


class KycWebhookReceipt(SQLModel, table=True):
    """Provider webhook event ids already handled: a replayed webhook has no second effect."""

    __tablename__ = "kyc_webhook_receipt"
    __table_args__ = {"schema": "profiles"}

    event_id: str = SQLField(sa_column=Column(String(128), primary_key=True))
    check_id: uuid.UUID
    received_at: datetime = timestamp_column()


class Accreditation(SQLModel, table=True):
    """A Reg D 506(c) accreditation verification; approvals expire."""

    __tablename__ = "accreditation"
    __table_args__ = {"schema": "profiles"}

    id: uuid.UUID = uuid_pk()
    user_id: uuid.UUID = SQLField(index=True)
    method: str = SQLField(sa_column=Column(String(32), nullable=False))
    evidence_document_id: uuid.UUID | None = SQLField(default=None, nullable=True)
    status: str = SQLField(sa_column=Column(String(32), nullable=False))
    reason: str | None = SQLField(default=None, sa_column=Column(String(500), nullable=True))
    reviewer_id: uuid.UUID | None = SQLField(default=None, nullable=True)
    created_at: datetime = timestamp_column(index=True)
    decided_at: datetime | None = optional_timestamp_column()
    expires_at: datetime | None = SQLField(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


# -- API schemas -------------------------------------------------------------------------------------------------


class BeneficialOwner(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    ownership_pct: float = Field(gt=0, le=100)


class Kyb(BaseModel):
    registration_number: str = Field(min_length=1, max_length=64)
    jurisdiction: str = Field(pattern="^[A-Z]{2}(-[A-Z0-9]{1,3})?$")
    beneficial_owners: list[BeneficialOwner] = Field(default_factory=list, max_length=50)


class ProfileUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: ProfileKind
    name: str = Field(min_length=1, max_length=200)
    residence_country: str = CountryCode
    contact_email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9 ()-]{5,31}$")
    entity_type: EntityType | None = None
    kyb: Kyb | None = None

    @model_validator(mode="after")
    def _entity_needs_kyb(self) -> ProfileUpdate:
        if self.kind == "entity" and (self.entity_type is None or self.kyb is None):
            raise ValueError("an entity profile needs entity_type and kyb")
        if self.kind == "individual" and (self.entity_type is not None or self.kyb is not None):
            raise ValueError("an individual profile has no entity_type or kyb")
        return self


class ProfileRead(BaseModel):
    user_id: uuid.UUID
    kind: ProfileKind | None = None
    name: str | None = None
    residence_country: str | None = None
    contact_email: str | None = None
    phone: str | None = None
    entity_type: str | None = None
    kyb: dict[str, Any] | None = None
    kyc_status: str
    accreditation_status: str


class KycSubmit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    legal_name: str = Field(min_length=1, max_length=200)
    date_of_birth: date
    country: str = CountryCode
    tax_id_last4: str = Field(pattern=r"^[0-9]{4}$")

    @model_validator(mode="after")
    def _plausible_birth_date(self) -> KycSubmit:
        if not date(1900, 1, 1) <= self.date_of_birth <= date.today():
            raise ValueError("date_of_birth must be between 1900-01-01 and today")
        return self


class KycRead(BaseModel):
    status: str
    check_id: uuid.UUID | None = None
    workflow_id: str | None = None
    reason: str | None = None
    decided_at: datetime | None = None


class AccreditationSubmit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: AccreditationMethod
    evidence_document_id: uuid.UUID | None = None


class AccreditationRead(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    method: str
    status: str
    evidence_document_id: uuid.UUID | None = None
    reason: str | None = None
    created_at: datetime
    decided_at: datetime | None = None
    expires_at: datetime | None = None
    workflow_id: str


class ReviewDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    reason: str = Field(min_length=1, max_length=500)


class KycWebhook(BaseModel):
    """What the KYC provider posts back (signed): the outcome of one check."""

    event_id: str = Field(min_length=1, max_length=128)
    check_id: uuid.UUID
    reference: str = Field(max_length=128)
    status: Literal["approved", "rejected"]
    reason: str | None = Field(default=None, max_length=500)


class BuyerEligibility(BaseModel):
    """Whether a user may buy: KYC approved and an unexpired accreditation."""

    kyc_status: str
    accreditation_status: str
    eligible: bool
    reasons: list[str]


# -- workflow and activity payloads ------------------------------------------------------------------------------


class KycWorkflowInput(BaseModel):
    user_id: uuid.UUID
    check_id: uuid.UUID
    legal_name: str
    date_of_birth: date
    country: str
    tax_id_last4: str
    provider_timeout_seconds: float = KYC_PROVIDER_TIMEOUT.total_seconds()
    index_status: bool = True
    """Upsert the `KycStatus` search attribute (off only where the server cannot register it: time-skipping tests)."""


class KycCheckRequest(BaseModel):
    user_id: uuid.UUID
    check_id: uuid.UUID
    legal_name: str
    date_of_birth: date
    country: str
    tax_id_last4: str


class KycProviderResult(BaseModel):
    check_id: uuid.UUID | None = None
    status: Literal["approved", "rejected"]
    reason: str | None = None
    provider_ref: str | None = None


class KycStatusChange(BaseModel):
    check_id: uuid.UUID
    status: KycStatus
    reason: str | None = None
    reviewer_id: uuid.UUID | None = None


class KycManualDecision(BaseModel):
    decision: Literal["approve", "reject"]
    reason: str
    reviewer_id: uuid.UUID


class AccreditationWorkflowInput(BaseModel):
    accreditation_id: uuid.UUID
    user_id: uuid.UUID
    validity_seconds: float = ACCREDITATION_VALIDITY.total_seconds()


class AccreditationReview(BaseModel):
    decision: Literal["approve", "reject"]
    reason: str
    reviewer_id: uuid.UUID


class AccreditationDecisionInput(BaseModel):
    accreditation_id: uuid.UUID
    status: Literal["approved", "rejected"]
    reason: str
    reviewer_id: uuid.UUID
    decided_at: datetime
    expires_at: datetime | None = None


class AccreditationExpireInput(BaseModel):
    accreditation_id: uuid.UUID


class AccreditationOutcome(BaseModel):
    status: str
    expires_at: datetime | None = None
