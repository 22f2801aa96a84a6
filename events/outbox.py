"""Writing events to the outbox inside the caller's transaction (the relay publishes them later)."""

from __future__ import annotations

from typing import Any

from opentelemetry.propagate import inject
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from events.envelope import CloudEvent
from models.platform import OutboxEvent

_NOTIFIED = "pap_outbox_notified_transaction"


async def record_event(
    session: AsyncSession,
    *,
    topic: str,
    key: str,
    type: str,
    source: str,
    data: dict[str, Any],
    subject: str | None = None,
) -> CloudEvent:
    """Add one event to the outbox; it is published only if the surrounding transaction commits."""
    carrier: dict[str, str] = {}
    inject(carrier)
    event = CloudEvent(
        source=source,
        type=type,
        subject=subject,
        data=data,
        traceparent=carrier.get("traceparent"),
    )
    session.add(
        OutboxEvent(
            id=event.id,
            topic=topic,
            key=key,
            type=event.type,
            source=event.source,
            subject=event.subject,
            data=event.model_dump(mode="json")["data"],
            traceparent=event.traceparent,
            created_at=event.time,
        )
    )
    await _notify_once(session)
    return event


async def _notify_once(session: AsyncSession) -> None:
    """Wake the relay once per transaction (PostgreSQL folds repeated NOTIFYs anyway; this saves round trips)."""
    current = session.get_nested_transaction() or session.get_transaction()
    if current is not None and session.info.get(_NOTIFIED) is current:
        return
    await session.execute(text("NOTIFY pap_outbox"))
    session.info[_NOTIFIED] = session.get_nested_transaction() or session.get_transaction()
