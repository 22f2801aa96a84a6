"""Notifications tables (schema `notifications`): in-app notifications, deliveries per channel, preferences."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Boolean, Index, String, Text, UniqueConstraint
from sqlmodel import Column, SQLModel
from sqlmodel import Field as SQLField

from models.base import optional_timestamp_column, timestamp_column, uuid_pk


class Category(StrEnum):
    ORDERS = "orders"
    DEALS = "deals"
    DOCUMENTS = "documents"
    PAYMENTS = "payments"
    ACCOUNT = "account"
    SECURITY = "security"


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    IN_APP = "in_app"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"
    """Refused for good (a malformed or rejected address): recorded, and the event's other deliveries go on."""


class Notification(SQLModel, table=True):
    """An in-app notification; one per event and user."""

    __tablename__ = "notification"
    __table_args__ = (
        UniqueConstraint("event_id", "user_id", name="uq_notification_event_id_user_id"),
        Index("ix_notification_user_created", "user_id", "created_at", "id"),
        {"schema": "notifications"},
    )

    id: uuid.UUID = uuid_pk()
    user_id: uuid.UUID = SQLField(nullable=False)
    event_id: uuid.UUID = SQLField(nullable=False)
    kind: str = SQLField(sa_column=Column(String(64), nullable=False))
    category: str = SQLField(sa_column=Column(String(16), nullable=False))
    title: str = SQLField(sa_column=Column(String(300), nullable=False))
    body: str = SQLField(sa_column=Column(Text, nullable=False))
    read_at: datetime | None = optional_timestamp_column()
    created_at: datetime = timestamp_column()


class Delivery(SQLModel, table=True):
    """One message for one user on one channel for one event: the unique key makes a redelivery send nothing."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("event_id", "user_id", "channel", name="uq_delivery_event_id_user_id_channel"),
        {"schema": "notifications"},
    )

    id: uuid.UUID = uuid_pk()
    event_id: uuid.UUID = SQLField(nullable=False)
    user_id: uuid.UUID = SQLField(nullable=False, index=True)
    channel: str = SQLField(sa_column=Column(String(16), nullable=False))
    kind: str = SQLField(sa_column=Column(String(64), nullable=False))
    status: str = SQLField(sa_column=Column(String(16), nullable=False))
    address: str | None = SQLField(default=None, sa_column=Column(String(320), nullable=True))
    provider_ref: str | None = SQLField(default=None, sa_column=Column(String(200), nullable=True))
    detail: str | None = SQLField(default=None, sa_column=Column(Text, nullable=True))
    sent_at: datetime | None = optional_timestamp_column()
    created_at: datetime = timestamp_column()


class Preference(SQLModel, table=True):
    """An explicit choice of a user for a category and channel (absent = the default)."""

    __tablename__ = "preference"
    __table_args__ = {"schema": "notifications"}

    user_id: uuid.UUID = SQLField(primary_key=True)
    category: str = SQLField(sa_column=Column(String(16), primary_key=True))
    channel: str = SQLField(sa_column=Column(String(16), primary_key=True))
    enabled: bool = SQLField(sa_column=Column(Boolean, nullable=False))
    updated_at: datetime = timestamp_column()


class NotificationRead(BaseModel):
    id: uuid.UUID
    kind: str
    category: str
    title: str
    body: str
    read: bool
    created_at: datetime


class NotificationPage(BaseModel):
    items: list[NotificationRead]
    next_cursor: str | None
    unread_count: int


class UnreadCount(BaseModel):
    unread_count: int


ChannelChoices = dict[Channel, bool]


class Preferences(BaseModel):
    """Every category with every channel; `locked` lists the (category, channel) pairs that cannot be turned off."""

    preferences: dict[Category, ChannelChoices]
    locked: list[str]
    sms_phone: str | None


class PreferencesUpdate(BaseModel):
    """Only the categories and channels sent change."""

    model_config = ConfigDict(extra="forbid")

    preferences: dict[Category, dict[Channel, bool]]
