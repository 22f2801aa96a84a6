"""The outbox relay through faults: the database cutting its connection off, and an event the broker can never take."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import delete, text
from sqlmodel import col, select

from events.kafka import create_producer
from events.outbox import record_event
from events.relay import OutboxRelay
from models.platform import OutboxEvent
from pap.db import SessionFactory, create_engine, create_session_factory, transaction
from pap.pg_notify import asyncpg_dsn
from pap.settings import Settings
from pap.stack.embedded import EmbeddedStack
from tests.support import eventually


@pytest.fixture
async def relay(stack: EmbeddedStack) -> AsyncIterator[OutboxRelay]:
    """A relay of this test's own, the only one running (the platform's, when started, pauses meanwhile)."""
    supervisor, settings = stack.supervisor, stack.settings
    platform_relay = "relay" in supervisor.names
    if platform_relay:
        await supervisor.stop("relay")
    bootstrap = settings.require("kafka_bootstrap")
    engine = create_engine(settings.require("database_url"), pool_size=2)
    yield OutboxRelay(
        engine, create_session_factory(engine), lambda: create_producer(bootstrap), bootstrap, poll_interval=0.05
    )
    await engine.dispose()
    if platform_relay:
        await supervisor.restart("relay")


async def _record(sessions: SessionFactory, key: str, data: dict[str, object]) -> uuid.UUID:
    async with transaction(sessions) as session:
        event = await record_event(
            session, topic="pap.diagnostics", key=key, type="test.relay", source="/tests", data=data
        )
    return event.id


async def _row(sessions: SessionFactory, event_id: uuid.UUID) -> OutboxEvent:
    async with sessions() as session:
        return (await session.exec(select(OutboxEvent).where(col(OutboxEvent.id) == event_id))).one()


async def _alive(task: asyncio.Task[None]) -> None:
    if task.done():
        task.result()
        raise AssertionError("the relay stopped on its own")


async def _waiting_relay_query(sessions: SessionFactory) -> int | None:
    """The server process of a relay query stuck behind a lock (read outside the locking transaction,
    whose view of pg_stat_activity stays as it first saw it)."""
    async with sessions() as session:
        pid = await session.scalar(
            text(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE '%outbox_event%FOR UPDATE%'"
            )
        )
    return int(pid) if pid is not None else None


async def test_the_relay_carries_on_when_the_database_cuts_its_query_off(
    relay: OutboxRelay, sessions: SessionFactory, settings: Settings
) -> None:
    key = f"relay-cut-{uuid.uuid4()}"
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))

    async def published(event_id: uuid.UUID) -> bool:
        await _alive(task)
        return (await _row(sessions, event_id)).published_at is not None

    try:
        before = await _record(sessions, key, {"n": 1})
        await eventually(lambda: published(before), what="an event published first")
        admin = await asyncpg.connect(asyncpg_dsn(settings.require("database_url")))
        try:
            async with admin.transaction():  # hold the relay's next query, then end its session under it
                await admin.execute("LOCK TABLE platform.outbox_event IN ACCESS EXCLUSIVE MODE")
                blocked = await eventually(
                    lambda: _waiting_relay_query(sessions), what="the relay waiting on its query"
                )
                assert await admin.fetchval("SELECT pg_terminate_backend($1)", blocked)
        finally:
            await admin.close()
        after = await _record(sessions, key, {"n": 2})
        await eventually(lambda: published(after), what="an event published after the query was cut off")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_an_event_the_broker_can_never_take_is_parked_and_the_rest_still_flow(
    relay: OutboxRelay, sessions: SessionFactory, settings: Settings
) -> None:
    key = f"relay-park-{uuid.uuid4()}"
    huge = await _record(sessions, key, {"blob": "x" * 1_100_000})  # over the producer's 1 MiB request limit
    small = await _record(sessions, key, {"n": 1})
    labels = {"topic": "pap.diagnostics"}
    parked_before = REGISTRY.get_sample_value("pap_outbox_parked_total", labels) or 0.0
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))

    async def small_published() -> bool:
        await _alive(task)
        return (await _row(sessions, small)).published_at is not None

    try:
        await eventually(small_published, what="the event behind the huge one published")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        row = await _row(sessions, huge)
        async with transaction(sessions) as session:
            await session.execute(delete(OutboxEvent).where(col(OutboxEvent.id) == huge))
    assert row.published_at is None
    assert row.failed_at is not None
    assert row.error is not None and "MessageSizeTooLargeError" in row.error
    assert REGISTRY.get_sample_value("pap_outbox_parked_total", labels) == parked_before + 1
