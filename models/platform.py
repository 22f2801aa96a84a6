"""Platform infrastructure tables: the transactional outbox, consumer de-duplication, idempotency keys."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Identity, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.base import optional_timestamp_column, timestamp_column


class OutboxEvent(SQLModel, table=True):
    """A domain event waiting to be published; written in the same transaction as the change it reports."""

    __tablename__ = "outbox_event"
    __table_args__ = (
        Index(
            "ix_outbox_event_unpublished",
            "seq",
            postgresql_where=text("published_at IS NULL"),
        ),
        {"schema": "platform"},
    )

    seq: int | None = Field(
        default=None,
        sa_column=Column(BigInteger, Identity(always=True), primary_key=True),
    )
    id: uuid.UUID = Field(unique=True)
    topic: str = Field(sa_column=Column(String(128), nullable=False))
    key: str = Field(sa_column=Column(String(128), nullable=False))
    type: str = Field(sa_column=Column(String(128), nullable=False))
    source: str = Field(sa_column=Column(String(256), nullable=False))
    subject: str | None = Field(default=None, sa_column=Column(String(256), nullable=True))
    data: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    traceparent: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))
    created_at: datetime = timestamp_column()
    published_at: datetime | None = optional_timestamp_column()
    failed_at: datetime | None = optional_timestamp_column()
    """Set when the relay parked the event because the broker can never take it (too large): never published."""
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    """Why it was parked, for the operator who fixes and re-queues it (clears `failed_at`)."""


class ProcessedEvent(SQLModel, table=True):
    """Which consumer has handled which event id: makes every consumer tolerate duplicates."""

    __tablename__ = "processed_event"
    __table_args__ = {"schema": "platform"}

    consumer: str = Field(sa_column=Column(String(128), primary_key=True))
    event_id: uuid.UUID = Field(primary_key=True)
    processed_at: datetime = timestamp_column()


class IdempotencyRecord(SQLModel, table=True):
    """The first response to a POST carrying an `Idempotency-Key`, replayed for retries."""

    __tablename__ = "idempotency_record"
    __table_args__ = {"schema": "platform"}

    scope: str = Field(sa_column=Column(String(256), primary_key=True))
    key: str = Field(sa_column=Column(String(256), primary_key=True))
    request_hash: str = Field(sa_column=Column(String(64), nullable=False))
    status_code: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    response_body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    response_headers: dict[str, str] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    created_at: datetime = timestamp_column()
