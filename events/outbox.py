"""Writing events to the outbox inside the caller's transaction (the relay publishes them later)."""

from __future__ import annotations

import uuid
from typing import Any

from opentelemetry.propagate import inject
from sqlalchemy import event, select
from sqlalchemy.orm import Session, SessionTransaction
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from events.envelope import CloudEvent
from models.platform import OutboxEvent

_PENDING = "pap_outbox_pending"
"""Events of the current (root) transaction, written together just before it commits."""


async def record_event(
    session: AsyncSession,
    *,
    topic: str,
    key: str,
    type: str,
    source: str,
    data: dict[str, Any],
    subject: str | None = None,
    event_id: uuid.UUID | None = None,
) -> CloudEvent:
    """Add one event to the outbox; it is published only if the surrounding transaction commits.

    Outside savepoints the rows wait until commit, so a transaction's events cost one INSERT however
    many it records (each statement is a round trip, and round trips are what an order or a deal
    step pays most for); a statement trigger on the table NOTIFYs the relay. Inside a savepoint
    they join the session at once, so rolling the savepoint back drops them as before.
    """
    carrier: dict[str, str] = {}
    inject(carrier)
    event = CloudEvent(
        source=source,
        type=type,
        subject=subject,
        data=data,
        traceparent=carrier.get("traceparent"),
        id=event_id or uuid.uuid4(),
    )
    row = OutboxEvent(
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
    if session.in_nested_transaction():
        session.add(row)
    else:
        session.info.setdefault(_PENDING, []).append(row)
    return event


async def record_event_once(session: AsyncSession, *, event_id: uuid.UUID, **fields: Any) -> bool:
    """`record_event` with a fixed id, unless that event is already in the outbox: for a step that may run
    again (a retried activity) and must announce itself once. False when it was there. Should the outbox
    have pruned it by then, the id still lets every consumer skip the repeat."""
    pending: list[OutboxEvent] = session.info.get(_PENDING, [])
    recorded = (
        any(row.id == event_id for row in pending)
        or (await session.scalar(select(col(OutboxEvent.seq)).where(col(OutboxEvent.id) == event_id))) is not None
    )
    if recorded:
        return False
    await record_event(session, event_id=event_id, **fields)
    return True


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    """Insert the transaction's events in one statement, inside the commit."""
    pending: list[OutboxEvent] = session.info.pop(_PENDING, [])
    if pending:
        session.add_all(pending)
        session.flush()


@event.listens_for(Session, "after_transaction_end")
def _forget_pending(session: Session, transaction: SessionTransaction) -> None:
    """A root transaction that ended without commit (rollback, close) publishes nothing."""
    if transaction.parent is None:
        session.info.pop(_PENDING, None)
