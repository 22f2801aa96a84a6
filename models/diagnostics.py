"""The diagnostic echo: one row that crosses API, Temporal, the outbox and Kafka to prove the wiring."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field
from sqlalchemy import Column, String
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from models.base import optional_timestamp_column, timestamp_column, uuid_pk


class Echo(SQLModel, table=True):
    __tablename__ = "echo"
    __table_args__ = {"schema": "diagnostics"}

    id: uuid.UUID = uuid_pk()
    message: str = SQLField(sa_column=Column(String(500), nullable=False))
    status: str = SQLField(default="received", sa_column=Column(String(32), nullable=False))
    created_at: datetime = timestamp_column()
    processed_at: datetime | None = optional_timestamp_column()
    consumed_at: datetime | None = optional_timestamp_column()


class EchoCreate(BaseModel):
    message: str = Field(min_length=1, max_length=500)
    delay_seconds: float = Field(default=0, ge=0, le=60, description="A durable timer between steps.")


class EchoRead(BaseModel):
    id: uuid.UUID
    message: str
    status: str
    workflow_id: str
    created_at: datetime
    processed_at: datetime | None
    consumed_at: datetime | None


class EchoWorkflowInput(BaseModel):
    echo_id: uuid.UUID
    delay_seconds: float = 0


class ProcessEchoInput(BaseModel):
    echo_id: uuid.UUID
