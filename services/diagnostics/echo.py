"""Use cases of the diagnostic echo."""

from __future__ import annotations

import uuid

from sqlmodel.ext.asyncio.session import AsyncSession

from events import topics
from events.outbox import record_event
from models.base import utcnow
from models.diagnostics import Echo
from services.errors import NotFound

SOURCE = "/pap/diagnostics"
ECHO_PROCESSED = "diagnostics.echo.processed"


async def create_echo(session: AsyncSession, message: str) -> Echo:
    echo = Echo(message=message)
    session.add(echo)
    await session.flush()
    return echo


async def get_echo(session: AsyncSession, echo_id: uuid.UUID) -> Echo:
    echo = await session.get(Echo, echo_id)
    if echo is None:
        raise NotFound(f"echo {echo_id} does not exist")
    return echo


async def mark_processed(session: AsyncSession, echo_id: uuid.UUID) -> Echo:
    """Idempotent: a retried activity finds the echo already processed and emits nothing more."""
    echo = await session.get(Echo, echo_id, with_for_update=True)
    if echo is None:
        raise NotFound(f"echo {echo_id} does not exist")
    if echo.processed_at is None:
        echo.processed_at = utcnow()
        echo.status = "processed"
        await record_event(
            session,
            topic=topics.DIAGNOSTICS,
            key=str(echo.id),
            type=ECHO_PROCESSED,
            source=SOURCE,
            subject=str(echo.id),
            data={"echo_id": str(echo.id), "message": echo.message},
        )
    return echo


async def mark_consumed(session: AsyncSession, echo_id: uuid.UUID) -> None:
    echo = await session.get(Echo, echo_id, with_for_update=True)
    if echo is not None and echo.consumed_at is None:
        echo.consumed_at = utcnow()
        echo.status = "consumed"
