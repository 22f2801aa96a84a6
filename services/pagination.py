"""Opaque keyset cursors for `?limit=&cursor=` lists: `(created_at, id)` of the last item returned."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import UTC, datetime

from services.errors import InvalidInput

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class InvalidCursor(InvalidInput):
    type = "invalid-cursor"
    title = "The cursor is not valid"


def encode_cursor(created_at: datetime, item_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(item_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, item_id = json.loads(raw)
        if not isinstance(created_at, str) or not isinstance(item_id, str):
            raise TypeError("a cursor holds two strings")
        moment = datetime.fromisoformat(created_at)
        if moment.tzinfo is None:
            raise ValueError("a cursor's time has its offset")
        return moment.astimezone(UTC), uuid.UUID(item_id)  # an offset at the calendar's ends overflows here
    except (ValueError, TypeError, OverflowError, RecursionError, binascii.Error) as error:
        raise InvalidCursor(
            "The cursor was not issued by this list.",
            errors=[{"pointer": "/query/cursor", "field": "cursor", "detail": "not a valid cursor"}],
        ) from error
