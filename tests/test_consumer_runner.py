"""The consumer runner against the real broker: duplicates ignored, retries, dead letters."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession

from events.consumer import ConsumerRunner, ConsumerSpec
from events.envelope import CloudEvent
from events.kafka import create_producer
from models.base import utcnow
from pap.db import SessionFactory
from pap.settings import Settings
from tests.support import eventually, read_topic

T = TypeVar("T")


async def test_a_duplicate_event_is_handled_once(sessions: SessionFactory, settings: Settings) -> None:
    calls: list[uuid.UUID] = []

    async def handler(_: AsyncSession, event: CloudEvent) -> None:
        calls.append(event.id)

    runner = ConsumerRunner(
        ConsumerSpec(f"dedup-{uuid.uuid4().hex[:8]}", ("pap.diagnostics",), handler),
        sessions,
        settings.require("kafka_bootstrap"),
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

    runner = ConsumerRunner(
        ConsumerSpec(name, ("pap.diagnostics",), handler), sessions, bootstrap, max_attempts=3, base_backoff=0.01
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
    runner = ConsumerRunner(spec, sessions, bootstrap)
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
