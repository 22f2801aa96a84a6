"""The consumer runner against the real broker: duplicates ignored, outages waited out, retries, dead letters."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import aiosmtplib
import asyncpg
import httpx
import pytest
import redis.exceptions
import sqlalchemy.exc
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.service import RPCError, RPCStatusCode

from events.consumer import ConsumerSpec
from events.envelope import CloudEvent
from events.failures import is_transient
from events.kafka import create_producer
from models.base import utcnow
from pap.db import SessionFactory
from pap.settings import Settings
from tests.support import consumer_runner, eventually, read_topic

T = TypeVar("T")


async def test_a_duplicate_event_is_handled_once(sessions: SessionFactory, settings: Settings) -> None:
    calls: list[uuid.UUID] = []

    async def handler(_: AsyncSession, event: CloudEvent) -> None:
        calls.append(event.id)

    runner = consumer_runner(
        ConsumerSpec(f"dedup-{uuid.uuid4().hex[:8]}", ("pap.diagnostics",), handler), sessions, settings
    )
    event = CloudEvent(source="/tests", type="test.once")
    assert await runner.handle_once(event) is True
    assert await runner.handle_once(event) is False
    assert calls == [event.id]


async def test_a_failing_handler_is_retried_then_dead_lettered(sessions: SessionFactory, settings: Settings) -> None:
    bootstrap = settings.require("kafka_bootstrap")
    name = f"dlq-{uuid.uuid4().hex[:8]}"
    poison = CloudEvent(source="/tests", type="test.poison", subject=name)
    flaky = CloudEvent(source="/tests", type="test.flaky", subject=name)
    attempts: dict[str, int] = {"poison": 0, "flaky": 0}
    handled: list[str] = []

    async def handler(_: AsyncSession, event: CloudEvent) -> None:
        if event.subject != name:
            return
        kind = event.type.removeprefix("test.")
        attempts[kind] += 1
        if kind == "poison" or attempts[kind] < 2:
            raise RuntimeError(f"{kind} fails")
        handled.append(kind)

    runner = consumer_runner(
        ConsumerSpec(name, ("pap.diagnostics",), handler), sessions, settings, max_attempts=3, base_backoff=0.01
    )
    producer = create_producer(bootstrap)
    await producer.start()
    try:
        for event in (poison, flaky):
            await producer.send_and_wait("pap.diagnostics", event.to_bytes(), key=name.encode())
    finally:
        await producer.stop()

    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        await eventually(lambda: _async(handled), lambda h: h == ["flaky"], what="flaky event handled")

        async def dead_letters() -> list[CloudEvent]:
            return [e for _, e in await read_topic(bootstrap, "pap.dlq") if e.subject == name]

        dead = await eventually(dead_letters, lambda d: len(d) == 1, what="poison event dead-lettered")
    finally:
        stop.set()
        await task
    assert dead[0].id == poison.id
    assert attempts == {"poison": 3, "flaky": 2}


async def _async(value: T) -> T:
    return value


async def _run_delayed(
    settings: Settings,
    sessions: SessionFactory,
    delay: float,
    events: list[CloudEvent],
    until: Callable[[dict[uuid.UUID, datetime]], bool],
) -> dict[uuid.UUID, datetime]:
    """Produce `events`, run a consumer with `delay_seconds=delay` until `until(handled)`, then stop it."""
    bootstrap = settings.require("kafka_bootstrap")
    name = events[0].subject or ""
    handled: dict[uuid.UUID, datetime] = {}

    async def handler(_: AsyncSession, event: CloudEvent) -> None:
        if event.subject == name:
            handled[event.id] = utcnow()

    # Only these events: other tests' recent events on the topic would hold a delayed consumer too.
    spec = ConsumerSpec(
        name, ("pap.diagnostics",), handler, event_types=frozenset(e.type for e in events), delay_seconds=delay
    )
    runner = consumer_runner(spec, sessions, settings)
    producer = create_producer(bootstrap)
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait("pap.diagnostics", event.to_bytes(), key=name.encode())
    finally:
        await producer.stop()
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        await eventually(lambda: _async(handled), until, what="the delayed consumer's progress")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)  # a consumer waiting for a due time still stops at once
    return handled


async def test_a_delayed_consumer_handles_an_event_no_sooner_than_its_delay(
    sessions: SessionFactory, settings: Settings
) -> None:
    name = f"delay-{uuid.uuid4().hex[:8]}"
    fresh = CloudEvent(source="/tests", type=f"test.{name}.fresh", subject=name)
    handled = await _run_delayed(settings, sessions, 1.5, [fresh], lambda handled: fresh.id in handled)
    assert handled[fresh.id] >= fresh.time + timedelta(seconds=1.5)


async def test_a_delayed_consumer_handles_old_events_and_holds_fresh_ones(
    sessions: SessionFactory, settings: Settings
) -> None:
    name = f"delay-{uuid.uuid4().hex[:8]}"
    # Naive, as another producer might send it: read as UTC.
    two_hours_ago = (utcnow() - timedelta(hours=2)).replace(tzinfo=None)
    old = CloudEvent(source="/tests", type=f"test.{name}.old", subject=name, time=two_hours_ago)
    fresh = CloudEvent(source="/tests", type=f"test.{name}.fresh", subject=name)
    handled = await _run_delayed(settings, sessions, 3600, [old, fresh], lambda handled: old.id in handled)
    assert old.id in handled and fresh.id not in handled


async def _alive(task: asyncio.Task[None], value: T) -> T:
    """`value`, unless the runner has ended: then its error (or the fact) fails the wait at once."""
    if task.done():
        task.result()
        raise AssertionError("the consumer runner stopped on its own")
    return value


async def _produce(bootstrap: str, key: str, events: list[CloudEvent]) -> int:
    """Send `events` in order under one key (so to one partition); returns that partition."""
    producer = create_producer(bootstrap)
    await producer.start()
    try:
        sent = [await producer.send("pap.diagnostics", event.to_bytes(), key=key.encode()) for event in events]
        partitions: set[int] = {metadata.partition for metadata in await asyncio.gather(*sent)}
    finally:
        await producer.stop()
    assert len(partitions) == 1
    return partitions.pop()


async def _dead_letters(bootstrap: str, name: str) -> list[CloudEvent]:
    return [event for _, event in await read_topic(bootstrap, "pap.dlq") if event.subject == name]


async def test_an_event_stamped_in_the_future_does_not_hold_a_consumer_without_delay(
    sessions: SessionFactory, settings: Settings
) -> None:
    name = f"future-{uuid.uuid4().hex[:8]}"
    future = CloudEvent(source="/tests", type=f"test.{name}.future", subject=name, time=utcnow() + timedelta(hours=1))
    after = CloudEvent(source="/tests", type=f"test.{name}.after", subject=name)
    handled = await _run_delayed(settings, sessions, 0, [future, after], lambda handled: after.id in handled)
    assert future.id in handled


async def test_a_delayed_consumer_waits_no_longer_than_its_delay_for_an_event_from_the_future(
    sessions: SessionFactory, settings: Settings
) -> None:
    name = f"future-{uuid.uuid4().hex[:8]}"
    sent_at = utcnow()
    future = CloudEvent(source="/tests", type=f"test.{name}.future", subject=name, time=sent_at + timedelta(hours=1))
    handled = await _run_delayed(settings, sessions, 1.0, [future], lambda handled: future.id in handled)
    assert handled[future.id] >= sent_at + timedelta(seconds=1.0)


async def test_an_event_time_past_the_calendar_is_dead_lettered_and_the_consumer_carries_on(
    sessions: SessionFactory, settings: Settings
) -> None:
    bootstrap = settings.require("kafka_bootstrap")
    name = f"calendar-{uuid.uuid4().hex[:8]}"
    last_day = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    bogus = CloudEvent(source="/tests", type=f"test.{name}.bogus", subject=name, time=last_day)
    old = CloudEvent(source="/tests", type=f"test.{name}.old", subject=name, time=utcnow() - timedelta(hours=2))
    handled: list[uuid.UUID] = []

    async def handler(_: AsyncSession, event: CloudEvent) -> None:
        handled.append(event.id)

    spec = ConsumerSpec(
        name, ("pap.diagnostics",), handler, event_types=frozenset({bogus.type, old.type}), delay_seconds=5
    )
    await _produce(bootstrap, name, [bogus, old])
    stop = asyncio.Event()
    task = asyncio.create_task(consumer_runner(spec, sessions, settings).run(stop))
    try:
        await eventually(lambda: _alive(task, handled), lambda h: old.id in h, what="the event after the bogus one")
        dead = await eventually(lambda: _dead_letters(bootstrap, name), what="the bogus event dead-lettered")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert [event.id for event in dead] == [bogus.id]
    assert handled == [old.id]


async def test_a_handler_that_loses_its_database_connection_waits_for_it_instead_of_dead_lettering(
    sessions: SessionFactory, settings: Settings
) -> None:
    bootstrap = settings.require("kafka_bootstrap")
    name = f"db-outage-{uuid.uuid4().hex[:8]}"
    event = CloudEvent(source="/tests", type=f"test.{name}", subject=name)
    attempts: list[int] = []
    handled: list[uuid.UUID] = []

    async def handler(session: AsyncSession, received: CloudEvent) -> None:
        attempts.append(len(attempts) + 1)
        if len(attempts) <= 6:  # the server drops this connection, as a restart or failover would
            await session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        handled.append(received.id)

    spec = ConsumerSpec(name, ("pap.diagnostics",), handler, event_types=frozenset({event.type}))
    await _produce(bootstrap, name, [event])
    stop = asyncio.Event()
    runner = consumer_runner(spec, sessions, settings, max_attempts=3, base_backoff=0.01)
    task = asyncio.create_task(runner.run(stop))
    try:
        await eventually(lambda: _alive(task, handled), lambda h: h == [event.id], what="the event handled")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert len(attempts) == 7
    assert await _dead_letters(bootstrap, name) == []


async def test_temporal_being_unavailable_is_retried_until_it_answers(
    sessions: SessionFactory, settings: Settings
) -> None:
    bootstrap = settings.require("kafka_bootstrap")
    name = f"temporal-outage-{uuid.uuid4().hex[:8]}"
    event = CloudEvent(source="/tests", type=f"test.{name}", subject=name)
    attempts: list[int] = []

    async def handler(_: AsyncSession, received: CloudEvent) -> None:
        attempts.append(len(attempts) + 1)
        if len(attempts) <= 5:
            raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")

    spec = ConsumerSpec(name, ("pap.diagnostics",), handler, event_types=frozenset({event.type}))
    await _produce(bootstrap, name, [event])
    stop = asyncio.Event()
    runner = consumer_runner(spec, sessions, settings, max_attempts=2, base_backoff=0.01)
    task = asyncio.create_task(runner.run(stop))
    try:
        await eventually(lambda: _alive(task, attempts), lambda a: len(a) == 6, what="the sixth attempt")
        assert await runner.handle_once(event) is False  # the sixth attempt handled it
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert await _dead_letters(bootstrap, name) == []


async def test_a_consumer_waiting_out_an_outage_stops_at_once_and_the_event_is_redelivered(
    sessions: SessionFactory, settings: Settings
) -> None:
    bootstrap = settings.require("kafka_bootstrap")
    name = f"outage-stop-{uuid.uuid4().hex[:8]}"
    event = CloudEvent(source="/tests", type=f"test.{name}", subject=name)
    attempts: list[int] = []
    handled: list[uuid.UUID] = []
    outage = True

    async def handler(_: AsyncSession, received: CloudEvent) -> None:
        attempts.append(len(attempts) + 1)
        if outage:
            raise ConnectionRefusedError(111, "Connect call failed")
        handled.append(received.id)

    spec = ConsumerSpec(name, ("pap.diagnostics",), handler, event_types=frozenset({event.type}))
    await _produce(bootstrap, name, [event])
    stop = asyncio.Event()
    # One attempt for a bug; an outage backs off 3 s, then 6 s: the stop comes during the second wait.
    task = asyncio.create_task(consumer_runner(spec, sessions, settings, max_attempts=1, base_backoff=3.0).run(stop))
    try:
        await eventually(lambda: _alive(task, attempts), lambda a: len(a) >= 2, what="a second attempt")
    finally:
        stop.set()
        await asyncio.wait_for(task, 4)  # well before the next attempt is due
    assert handled == []

    outage = False
    stop = asyncio.Event()
    task = asyncio.create_task(consumer_runner(spec, sessions, settings).run(stop))
    try:
        await eventually(lambda: _alive(task, handled), lambda h: h == [event.id], what="the event redelivered")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert await _dead_letters(bootstrap, name) == []


async def test_the_lag_gauge_counts_the_events_a_consumer_has_yet_to_handle_per_partition(
    sessions: SessionFactory, settings: Settings
) -> None:
    bootstrap = settings.require("kafka_bootstrap")
    name = f"lag-{uuid.uuid4().hex[:8]}"
    events = [CloudEvent(source="/tests", type=f"test.{name}", subject=name, data={"n": n}) for n in range(250)]
    release = asyncio.Event()
    handled: list[int] = []

    async def handler(_: AsyncSession, event: CloudEvent) -> None:
        if event.data["n"] == 150:
            await release.wait()  # hold the consumer with a batch or more still to read
        handled.append(event.data["n"])

    partition = await _produce(bootstrap, name, events)
    labels = {"consumer": name, "topic": "pap.diagnostics", "partition": str(partition)}

    async def lag() -> float | None:
        return REGISTRY.get_sample_value("pap_consumer_lag_events", labels)

    spec = ConsumerSpec(name, ("pap.diagnostics",), handler, event_types=frozenset({events[0].type}))
    stop = asyncio.Event()
    task = asyncio.create_task(consumer_runner(spec, sessions, settings).run(stop))
    try:

        async def lag_while_running() -> float | None:
            return await _alive(task, await lag())

        behind = await eventually(lag_while_running, lambda v: bool(v), what="a lag reported")
        assert behind is not None and behind >= 100  # #150 and the 99 after it at least
        release.set()
        await eventually(lambda: _alive(task, handled), lambda h: len(h) == 250, what="every event handled")
        await eventually(lag, lambda v: v == 0, what="no lag once caught up")
    finally:
        release.set()
        stop.set()
        await asyncio.wait_for(task, 10)


def _raised_from(error: BaseException, cause: BaseException) -> BaseException:
    error.__cause__ = cause
    return error


_SMS = httpx.Request("POST", "http://sms.example/messages")


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ConnectionRefusedError(111, "Connect call failed"), True),
        (OSError("Multiple exceptions: [Errno 111] Connect call failed"), True),
        (TimeoutError(), True),
        (FileNotFoundError(2, "No such file"), False),
        (sqlalchemy.exc.DBAPIError("SELECT 1", None, asyncpg.AdminShutdownError("terminating")), True),
        (sqlalchemy.exc.DBAPIError("SELECT 1", None, asyncpg.CannotConnectNowError("starting up")), True),
        (sqlalchemy.exc.DBAPIError("SELECT 1", None, asyncpg.ConnectionFailureError("broken")), True),
        (sqlalchemy.exc.DBAPIError("SELECT 1", None, Exception(), connection_invalidated=True), True),
        (sqlalchemy.exc.IntegrityError("INSERT", None, asyncpg.UniqueViolationError("duplicate key")), False),
        (sqlalchemy.exc.TimeoutError("QueuePool limit reached"), True),
        (asyncpg.CannotConnectNowError("the database system is starting up"), True),
        (RPCError("unavailable", RPCStatusCode.UNAVAILABLE, b""), True),
        (RPCError("deadline", RPCStatusCode.DEADLINE_EXCEEDED, b""), True),
        (RPCError("busy", RPCStatusCode.RESOURCE_EXHAUSTED, b""), True),
        (RPCError("no such workflow", RPCStatusCode.NOT_FOUND, b""), False),
        (aiosmtplib.SMTPServerDisconnected("gone"), True),
        (aiosmtplib.SMTPReadTimeoutError("slow"), True),
        (aiosmtplib.SMTPResponseException(451, "try again later"), True),
        (aiosmtplib.SMTPRecipientRefused(550, "no such user", "x@example.com"), False),
        (httpx.ConnectError("refused", request=_SMS), True),
        (httpx.HTTPStatusError("503", request=_SMS, response=httpx.Response(503, request=_SMS)), True),
        (httpx.HTTPStatusError("400", request=_SMS, response=httpx.Response(400, request=_SMS)), False),
        (redis.exceptions.ConnectionError("refused"), True),
        (_raised_from(RuntimeError("could not notify"), ConnectionResetError()), True),
        (ValueError("bad data"), False),
    ],
)
def test_outages_are_told_apart_from_failures_of_the_event_itself(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient
