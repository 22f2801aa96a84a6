"""Documents context: generated deal documents, e-signature requests, signing links and the signing audit trail."""

from __future__ import annotations

import datetime as dt
import unicodedata
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationInfo, field_validator
from sqlalchemy import Column, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from models.base import Money, optional_timestamp_column, timestamp_column, uuid_pk


class DocumentKind(StrEnum):
    STOCK_TRANSFER_NOTICE = "stock_transfer_notice"
    STOCK_TRANSFER_AGREEMENT = "stock_transfer_agreement"
    ISSUER_CONSENT = "issuer_consent"
    JOINDER = "joinder"


class DocumentStatus(StrEnum):
    GENERATED = "generated"
    AWAITING_SIGNATURES = "awaiting_signatures"
    SIGNED = "signed"
    VOIDED = "voided"
    DECLINED = "declined"


class SignerStatus(StrEnum):
    PENDING = "pending"
    SIGNED = "signed"
    DECLINED = "declined"
    VOIDED = "voided"


class SignatureEventKind(StrEnum):
    SENT = "sent"
    VIEWED = "viewed"
    SIGNED = "signed"
    DECLINED = "declined"
    VOIDED = "voided"
    REMINDED = "reminded"


# --- tables ---------------------------------------------------------------------------------


class Document(SQLModel, table=True):
    """One generated PDF of a deal; at most one per (deal, kind) so a retried generation finds it."""

    __tablename__ = "document"
    __table_args__ = (
        # One live document per deal and kind; a voided one (a defaulted buyer's) may be replaced.
        Index(
            "uq_document_deal_id_kind_live", "deal_id", "kind", unique=True, postgresql_where=text("status <> 'voided'")
        ),
        {"schema": "documents"},
    )

    id: uuid.UUID = uuid_pk()
    deal_id: uuid.UUID = SQLField(index=True)
    company_id: uuid.UUID | None = SQLField(default=None, index=True)
    kind: str = SQLField(sa_column=Column(String(64), nullable=False))
    status: str = SQLField(default=DocumentStatus.GENERATED, sa_column=Column(String(32), nullable=False))
    sha256: str = SQLField(sa_column=Column(String(64), nullable=False))
    storage_key: str = SQLField(sa_column=Column(String(512), nullable=False))
    page_count: int = SQLField(sa_column=Column(Integer, nullable=False))
    provider: str = SQLField(default="builtin", sa_column=Column(String(64), nullable=False))
    envelope_ref: str | None = SQLField(default=None, sa_column=Column(String(256), nullable=True))
    signed_sha256: str | None = SQLField(default=None, sa_column=Column(String(64), nullable=True))
    signed_storage_key: str | None = SQLField(default=None, sa_column=Column(String(512), nullable=True))
    status_reason: str | None = SQLField(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = timestamp_column()
    completed_at: datetime | None = optional_timestamp_column()


class SignatureRequest(SQLModel, table=True):
    """One signer of one document, with the position in the signing order."""

    __tablename__ = "signature_request"
    __table_args__ = (
        UniqueConstraint("document_id", "user_id", name="uq_signature_request_document_id_user_id"),
        {"schema": "documents"},
    )

    id: uuid.UUID = uuid_pk()
    document_id: uuid.UUID = SQLField(foreign_key="documents.document.id", index=True)
    user_id: uuid.UUID = SQLField(index=True)
    role: str = SQLField(sa_column=Column(String(64), nullable=False))
    name: str = SQLField(sa_column=Column(String(256), nullable=False))
    email: str = SQLField(sa_column=Column(String(320), nullable=False))
    signing_order: int = SQLField(sa_column=Column(Integer, nullable=False))
    status: str = SQLField(default=SignerStatus.PENDING, sa_column=Column(String(32), nullable=False))
    signature_name: str | None = SQLField(default=None, sa_column=Column(String(256), nullable=True))
    signed_at: datetime | None = optional_timestamp_column()
    signed_ip: str | None = SQLField(default=None, sa_column=Column(String(64), nullable=True))
    created_at: datetime = timestamp_column()


class SigningToken(SQLModel, table=True):
    """A one-time signing link; only the SHA-256 of the token is stored."""

    __tablename__ = "signing_token"
    __table_args__ = {"schema": "documents"}

    id: uuid.UUID = uuid_pk()
    signature_request_id: uuid.UUID = SQLField(foreign_key="documents.signature_request.id", index=True)
    token_hash: str = SQLField(sa_column=Column(String(64), nullable=False, unique=True))
    expires_at: datetime = timestamp_column()
    used_at: datetime | None = optional_timestamp_column()
    created_at: datetime = timestamp_column()


class SignatureEvent(SQLModel, table=True):
    """The signing audit trail: who did what to which version of the document, from where."""

    __tablename__ = "signature_event"
    __table_args__ = {"schema": "documents"}

    id: uuid.UUID = uuid_pk()
    document_id: uuid.UUID = SQLField(foreign_key="documents.document.id", index=True)
    signature_request_id: uuid.UUID | None = SQLField(default=None, foreign_key="documents.signature_request.id")
    actor_id: uuid.UUID | None = SQLField(default=None)
    kind: str = SQLField(sa_column=Column(String(32), nullable=False))
    ip: str | None = SQLField(default=None, sa_column=Column(String(64), nullable=True))
    user_agent: str | None = SQLField(default=None, sa_column=Column(String(512), nullable=True))
    document_sha256: str = SQLField(sa_column=Column(String(64), nullable=False))
    detail: dict[str, Any] = SQLField(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    at: datetime = timestamp_column()


# --- inputs and views -----------------------------------------------------------------------


class Party(BaseModel):
    id: uuid.UUID
    name: str = Field(min_length=1, max_length=256)


class DealTerms(BaseModel):
    """Everything a deal document says; the same terms always render the same bytes."""

    model_config = ConfigDict(frozen=True)

    deal_id: uuid.UUID
    company_id: uuid.UUID | None = None
    company_name: str
    company_legal_name: str
    security_class: str
    seller: Party
    buyer: Party
    quantity: int = Field(gt=0)
    price_per_share: Money
    total: Money
    transfer_fee: Money
    platform_fee: Money | None = None
    """The platform's fee, also paid out of the escrow (None on documents made before it was stated)."""
    seller_proceeds: Money | None = None
    """What the escrow releases to the seller: the total less both fees."""
    rofr_days: int = Field(default=30, ge=0)
    issuer_approval_required: bool = True
    date: dt.date


class SignerSpec(BaseModel):
    user_id: uuid.UUID
    role: str = Field(min_length=1, max_length=64, examples=["seller", "buyer", "issuer"])
    name: str = Field(min_length=1, max_length=256)
    email: EmailStr
    order: int = Field(default=1, ge=1, description="Signers with a lower order sign first; equal orders in parallel.")


class SignerRead(BaseModel):
    user_id: uuid.UUID
    role: str
    status: SignerStatus
    name: str
    order: int
    signed_at: datetime | None = None


class DocumentSummary(BaseModel):
    """The contract shape of `GET /v1/deals/{id}/documents` items."""

    id: uuid.UUID
    kind: DocumentKind
    sha256: str
    status: DocumentStatus
    signers: list[SignerRead]


class DocumentRead(DocumentSummary):
    deal_id: uuid.UUID
    company_id: uuid.UUID | None
    storage_key: str
    page_count: int
    signed_sha256: str | None
    created_at: datetime
    completed_at: datetime | None


class SignatureEventRead(BaseModel):
    kind: SignatureEventKind
    actor_id: uuid.UUID | None
    ip: str | None
    user_agent: str | None
    document_sha256: str
    at: datetime
    detail: dict[str, Any]


class SignBody(BaseModel):
    signature_name: str = Field(min_length=1, max_length=256)
    consent: Literal[True] = Field(description="Must be literally true: the signer consents to sign electronically.")

    @field_validator("signature_name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("signature_name must not be blank")
        if any(unicodedata.category(c).startswith("C") for c in value):  # line breaks would forge certificate lines
            raise ValueError("signature_name must be one line of printable text")
        return value.strip()


class DeclineBody(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class SignResult(BaseModel):
    document_id: uuid.UUID
    status: DocumentStatus
    signers: list[SignerRead]


class SigningLinkView(BaseModel):
    """What the holder of a signing link sees before signing."""

    document_id: uuid.UUID
    kind: DocumentKind
    sha256: str
    signer_name: str
    role: str
    your_turn: bool
    content_url: str
    expires_at: datetime


class RequestContext(BaseModel):
    """Where a signing action came from, for the audit trail (cut to what the trail stores: any
    browser may sign, however long its User-Agent)."""

    ip: str | None = None
    user_agent: str | None = None

    @field_validator("ip", "user_agent")
    @classmethod
    def _fits_the_trail(cls, value: str | None, info: ValidationInfo) -> str | None:
        return value[: 64 if info.field_name == "ip" else 512] if value is not None else None


# --- workflow signals -----------------------------------------------------------------------


class DocumentSigned(BaseModel):
    """Signal `document_signed` to `deal-{deal_id}`; `completed` when the last signer signed."""

    document_id: uuid.UUID
    deal_id: uuid.UUID
    kind: DocumentKind
    signer_id: uuid.UUID
    completed: bool


class DocumentDeclined(BaseModel):
    """Signal `document_declined` to `deal-{deal_id}`."""

    document_id: uuid.UUID
    deal_id: uuid.UUID
    signer_id: uuid.UUID
    reason: str
