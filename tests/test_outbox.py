"""The outbox wakes the relay: committing an event NOTIFYs `pap_outbox` (the table's trigger does it);
housekeeping later prunes what no reader needs any more."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlmodel import col, select

from events.outbox import record_event
from models.base import utcnow
from models.identity import PasswordReset, User
from models.platform import OutboxEvent, ProcessedEvent
from models.pricing import Quote
from pap.db import SessionFactory, transaction
from pap.pg_notify import asyncpg_dsn
from pap.settings import Settings
from tests.support import eventually
from workers.housekeeping import Housekeeper, Retention


@pytest.fixture
async def notifying_backends(settings: Settings) -> AsyncIterator[asyncio.Queue[int]]:
    """The server process id of every transaction that notified `pap_outbox` from now on."""
    heard: asyncio.Queue[int] = asyncio.Queue()
    connection = await asyncpg.connect(asyncpg_dsn(settings.require("database_url")))
    await connection.add_listener("pap_outbox", lambda _connection, pid, _channel, _payload: heard.put_nowait(pid))
    yield heard
    await connection.close()


async def test_committing_an_event_wakes_the_relay(
    sessions: SessionFactory, notifying_backends: asyncio.Queue[int]
) -> None:
    async with transaction(sessions) as session:
        backend = await session.scalar(text("SELECT pg_backend_pid()"))
        await record_event(session, topic="pap.diagnostics", key="k", type="test.outbox", source="/test", data={})
    while (await asyncio.wait_for(notifying_backends.get(), timeout=10)) != backend:
        pass  # another process's event (the platform is running)


async def test_housekeeping_prunes_old_event_rows_and_quotes_but_keeps_what_is_still_read(
    sessions: SessionFactory, settings: Settings
) -> None:
    now = utcnow()

    def ago(days: int) -> datetime:
        return now - timedelta(days=days)

    def outbox(created: datetime, published: datetime | None = None, failed: datetime | None = None) -> OutboxEvent:
        return OutboxEvent(
            id=uuid.uuid4(),
            topic="pap.diagnostics",
            key="retention",
            type="test.retention",
            source="/tests",
            data={},
            created_at=created,
            published_at=published,
            failed_at=failed,
            error="parked by the test" if failed else None,
        )

    def quote(security_id: uuid.UUID, at: datetime) -> Quote:
        return Quote(
            security_id=security_id, bid=Decimal(10), ask=Decimal(11), currency="USD", at=at, event_id=uuid.uuid4()
        )

    consumer = f"retention-{uuid.uuid4().hex[:8]}"
    traded, quiet = uuid.uuid4(), uuid.uuid4()
    stale_outbox = [outbox(ago(9), published=ago(8 + n)) for n in range(3)]
    kept_outbox = [outbox(ago(9), published=ago(6)), outbox(ago(9), failed=ago(9)), outbox(ago(1))]
    stale_processed = [ProcessedEvent(consumer=consumer, event_id=uuid.uuid4(), processed_at=ago(36)) for _ in range(5)]
    kept_processed = [ProcessedEvent(consumer=consumer, event_id=uuid.uuid4(), processed_at=ago(34))]
    stale_quotes = [quote(traded, ago(days)) for days in (400, 390, 380)]
    # The last quote before the retention cut still answers reads as of the cut; a quiet book's only quote is its book.
    kept_quotes = [quote(traded, ago(370)), quote(traded, ago(10)), quote(quiet, ago(500))]
    async with transaction(sessions) as session:
        session.add_all([*stale_outbox, *kept_outbox, *stale_processed, *kept_processed, *stale_quotes, *kept_quotes])

    async def remaining() -> tuple[set[uuid.UUID], set[uuid.UUID], set[uuid.UUID]]:
        async with sessions() as session:
            outbox_ids = {e.id for e in [*stale_outbox, *kept_outbox]}
            quote_ids = {q.id for q in [*stale_quotes, *kept_quotes]}
            return (
                set((await session.exec(select(OutboxEvent.id).where(col(OutboxEvent.id).in_(outbox_ids)))).all()),
                set(
                    (
                        await session.exec(select(ProcessedEvent.event_id).where(ProcessedEvent.consumer == consumer))
                    ).all()
                ),
                set((await session.exec(select(Quote.id).where(col(Quote.id).in_(quote_ids)))).all()),
            )

    kept = ({e.id for e in kept_outbox}, {p.event_id for p in kept_processed}, {q.id for q in kept_quotes})
    stop = asyncio.Event()
    housekeeper = Housekeeper(sessions, Retention.from_settings(settings), interval=0.1, batch_size=2)
    task = asyncio.create_task(housekeeper.run(stop))
    try:
        await eventually(remaining, lambda rows: rows == kept, what="only the rows still needed left")
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_housekeeping_prunes_password_resets_a_month_after_their_links_expired(
    sessions: SessionFactory, settings: Settings
) -> None:
    now = utcnow()
    user = User(email=f"reset-{uuid.uuid4().hex[:8]}@example.com", full_name="R", password_hash="x", roles=[])
    old, recent = (
        PasswordReset(user_id=user.id, created_at=now - age, expires_at=now - age + timedelta(minutes=30))
        for age in (timedelta(days=31), timedelta(days=29))
    )
    async with transaction(sessions) as session:
        session.add(user)
        await session.flush()
        session.add_all([old, recent])
    housekeeper = Housekeeper(sessions, Retention.from_settings(settings), interval=60, batch_size=100)
    pruned = await housekeeper.prune_once(asyncio.Event())
    assert pruned["identity.password_reset"] >= 1
    async with sessions() as session:
        left = (await session.exec(select(PasswordReset.id).where(PasswordReset.user_id == user.id))).all()
    assert set(left) == {recent.id}


async def test_housekeeping_forgets_idempotent_responses_after_a_day(
    api: httpx.AsyncClient, sessions: SessionFactory, settings: Settings
) -> None:
    """Anyone can store a response by sending a key (even to a path that does not exist); none is kept for ever."""
    keys = [f"hk-{uuid.uuid4()}" for _ in range(2)]
    for key in keys:
        answer = await api.post(f"/v1/nowhere-{'x' * 300}", headers={"Idempotency-Key": key})  # a path too long to keep
        assert answer.status_code == 404, answer.text
    async with transaction(sessions) as session:
        await session.execute(
            text("UPDATE platform.idempotency_record SET created_at = now() - interval '25 hours' WHERE key = :k"),
            {"k": keys[0]},
        )
    housekeeper = Housekeeper(sessions, Retention.from_settings(settings), interval=60, batch_size=100)
    pruned = await housekeeper.prune_once(asyncio.Event())
    assert pruned["platform.idempotency_record"] >= 1
    async with sessions() as session:
        left = await session.execute(
            text("SELECT key FROM platform.idempotency_record WHERE key = ANY(:keys)"), {"keys": keys}
        )
        assert [row[0] for row in left.all()] == [keys[1]]
