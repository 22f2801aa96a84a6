"""What a domain event means for a person: an `Intent` (who, which category, what to say)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from models.notifications import Category


@dataclass(frozen=True)
class Intent:
    user_id: uuid.UUID
    category: Category
    kind: str
    title: str
    body: str
    details: list[tuple[str, str]] = field(default_factory=list)
    """Label/value lines shown in emails under the body."""
    template: str | None = None
    """A specific email template (`templates/<name>.{txt,html}.j2`); the generic one otherwise."""
    email: bool = True
    """False for progress worth seeing in the app but not worth an email (preferences still apply otherwise)."""
    action: tuple[str, str] | None = None
    """A (label, URL) link emails show as their call to action; a path (`/app/...`) is on the platform's public URL."""


def as_uuid(value: Any) -> uuid.UUID | None:
    """A UUID from event data, or None when absent or malformed (an event about nobody notifies nobody)."""
    if value is None:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def price_text(value: Any) -> str:
    """`12.5000 USD` from `{amount, currency}` or a bare decimal string."""
    if isinstance(value, dict):
        return f"{_decimal(value.get('amount'))} {value.get('currency', '')}".strip()
    return _decimal(value)


def _decimal(value: Any) -> str:
    try:
        return format(Decimal(str(value)).normalize(), "f")
    except (InvalidOperation, ValueError):
        return str(value)


def label(value: Any) -> str:
    """`awaiting_funding` -> `awaiting funding`."""
    return str(value or "").replace("_", " ")
