"""Helpers for tests: waiting on a condition (never a fixed sleep), reading Kafka topics and the mail sink,
and the CSRF token of an app form."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import time
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import text

from events.consumer import ConsumerRunner, ConsumerSpec
from events.envelope import CloudEvent
from pap.db import SessionFactory
from pap.settings import Settings

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    predicate: Callable[[T], bool] = bool,
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Poll `probe` until `predicate(result)` holds; fail with the last result after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if predicate(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s; last value: {result!r}")
        await asyncio.sleep(interval)


def consumer_runner(spec: ConsumerSpec, sessions: SessionFactory, settings: Settings, **options: Any) -> ConsumerRunner:
    """A runner for `spec` on the test stack's broker, joining its group as quickly as the stack's settings allow."""
    return ConsumerRunner(
        spec,
        sessions,
        settings.require("kafka_bootstrap"),
        session_timeout_ms=settings.consumer_session_timeout_ms,
        **options,
    )


async def read_topic(bootstrap: str, topic: str, *, timeout: float = 10.0) -> list[tuple[bytes | None, CloudEvent]]:
    """Every event currently on `topic`, from the beginning, per partition in offset order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout
        partitions: set[int] = set()
        while not partitions:
            await consumer.topics()  # refreshes cluster metadata
            partitions = consumer.partitions_for_topic(topic) or set()
            if not partitions and time.monotonic() > deadline:
                raise AssertionError(f"topic {topic} has no partitions after {timeout}s")
            if not partitions:
                await asyncio.sleep(0.1)
        assignment = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assignment)
        await consumer.seek_to_beginning(*assignment)
        end = await consumer.end_offsets(assignment)
        out: list[tuple[bytes | None, CloudEvent]] = []
        while [tp for tp in assignment if await consumer.position(tp) < end[tp]]:
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end within {timeout}s")
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                out.extend((r.key, CloudEvent.from_bytes(r.value or b"")) for r in records)
        return out
    finally:
        await consumer.stop()


def mails(settings: Settings, to: str, kind: str | None = None) -> list[EmailMessage]:
    """The messages the SMTP sink received for `to` (of one `X-PAP-Kind`, if given), oldest first."""
    folder = Path(settings.state_dir) / "mail"
    out = []
    for path in sorted(folder.glob("*.eml")) if folder.exists() else []:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        if to in str(message["To"]) and (kind is None or message["X-PAP-Kind"] == kind):
            out.append(message)
    return out


def csrf_token(html: str) -> str:
    """The CSRF token an app page's form carries."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field in the form"
    return match.group(1)


async def waiting_for_a_lock(sessions: SessionFactory, query_like: str) -> bool:
    """Whether some backend waits for a row lock in a statement matching `query_like` (SQL ILIKE)."""
    async with sessions() as session:
        waiting = await session.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE :q"),
            {"q": query_like},
        )
        return bool(waiting.scalar_one())
