"""Pruning the event bookkeeping nothing reads any more: published outbox rows and de-duplication marks.

Each call deletes at most `limit` rows (one short transaction, by `ctid`), so a
large backlog is worked off in batches that never hold locks for long.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import TextClause, text
from sqlmodel.ext.asyncio.session import AsyncSession

_PUBLISHED_OUTBOX = text(
    """
    DELETE FROM platform.outbox_event WHERE ctid IN (
        SELECT ctid FROM platform.outbox_event WHERE published_at < :before LIMIT :limit
    )
    """
)
_PROCESSED_EVENTS = text(
    """
    DELETE FROM platform.processed_event WHERE ctid IN (
        SELECT ctid FROM platform.processed_event WHERE processed_at < :before LIMIT :limit
    )
    """
)


async def prune_published_outbox(session: AsyncSession, *, before: datetime, limit: int) -> int:
    """Outbox rows published before `before` (unpublished and parked rows stay); returns how many went."""
    return await _delete(session, _PUBLISHED_OUTBOX, before, limit)


async def prune_processed_events(session: AsyncSession, *, before: datetime, limit: int) -> int:
    """De-duplication marks older than `before`: no redelivery or replay can bring those events back."""
    return await _delete(session, _PROCESSED_EVENTS, before, limit)


async def _delete(session: AsyncSession, statement: TextClause, before: datetime, limit: int) -> int:
    result = await session.execute(statement, {"before": before, "limit": limit})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]  # a DELETE gives a CursorResult
