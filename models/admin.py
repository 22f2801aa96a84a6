"""The append-only, hash-chained audit log of the admin context."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import BigInteger, Column, Identity, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.base import timestamp_column, uuid_pk


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
