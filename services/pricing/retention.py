"""Pruning book quotes older than any read needs (one per book change, so the busiest pricing table).

A read as of T uses the latest quote at or before T (`reference.latest_quote`).
Deleting only quotes that a newer quote at or before the cut supersedes keeps
every read as of the cut or later exactly as it was, and a security whose book
has not changed since keeps its last quote.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

_SUPERSEDED_QUOTES = text(
    """
    DELETE FROM pricing.quote WHERE ctid IN (
        SELECT old.ctid FROM pricing.quote AS old
        WHERE old.at < :before AND EXISTS (
            SELECT 1 FROM pricing.quote AS newer
            WHERE newer.security_id = old.security_id
              AND newer.at <= :before
              AND (newer.at, newer.created_at) > (old.at, old.created_at)
        )
        LIMIT :limit
    )
    """
)


async def prune_quotes(session: AsyncSession, *, before: datetime, limit: int) -> int:
    """Delete up to `limit` quotes no read as of `before` or later can return; returns how many went."""
    result = await session.execute(_SUPERSEDED_QUOTES, {"before": before, "limit": limit})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]  # a DELETE gives a CursorResult
