"""The dead-letter topic for operators: list what consumers gave up on, and replay it to the original topic.

A replay re-publishes the original bytes and key to the original topic. Every
consumer of that topic sees the event again, and the ones that already handled
it skip it (de-duplication by event id per consumer), so replaying is safe to
repeat; one run publishes each (consumer, event id) at most once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from events.envelope import CloudEvent
from events.kafka import create_producer, ensure_topics
from events.topics import DEAD_LETTER


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    consumer: str
    original_topic: str
    error: str
    key: bytes | None
    value: bytes
    event_id: str | None
    event_type: str | None


def _header(headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...], name: str) -> str:
    for key, value in headers:
        if key == name:
            return value.decode(errors="replace")
    return ""


async def read_dead_letters(bootstrap: str, *, timeout: float = 15.0) -> list[DeadLetter]:
    """Every record on the dead-letter topic, per partition in offset order."""
    await ensure_topics(bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout
        partitions: set[int] = set()
        while not partitions:
            await consumer.topics()
            partitions = consumer.partitions_for_topic(DEAD_LETTER) or set()
            if not partitions:
                if time.monotonic() > deadline:
                    return []
                await asyncio.sleep(0.1)
        assignment = [TopicPartition(DEAD_LETTER, p) for p in sorted(partitions)]
        consumer.assign(assignment)
        await consumer.seek_to_beginning(*assignment)
        end = await consumer.end_offsets(assignment)
        out: list[DeadLetter] = []
        while [tp for tp in assignment if await consumer.position(tp) < end[tp]]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {DEAD_LETTER} to its end within {timeout}s")
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for r in records:
                    out.append(_dead_letter(r.partition, r.offset, r.headers, r.key, r.value or b""))
        return out
    finally:
        await consumer.stop()


def _dead_letter(
    partition: int, offset: int, headers: tuple[tuple[str, bytes], ...], key: bytes | None, value: bytes
) -> DeadLetter:
    event_id: str | None = None
    event_type: str | None = None
    try:
        event = CloudEvent.from_bytes(value)
        event_id, event_type = str(event.id), event.type
    except ValidationError:
        pass  # a malformed record is still listed and replayable
    return DeadLetter(
        partition=partition,
        offset=offset,
        consumer=_header(headers, "pap-consumer"),
        original_topic=_header(headers, "pap-original-topic"),
        error=_header(headers, "pap-error"),
        key=key,
        value=value,
        event_id=event_id,
        event_type=event_type,
    )


async def replay_dead_letters(bootstrap: str, *, consumer: str | None = None) -> list[DeadLetter]:
    """Re-publish dead letters (of one consumer, or all) to their original topics; returns what was replayed."""
    letters = [
        d
        for d in await read_dead_letters(bootstrap)
        if d.original_topic and (consumer is None or d.consumer == consumer)
    ]
    unique: dict[tuple[str, str], DeadLetter] = {}
    for letter in letters:
        unique[(letter.consumer, letter.event_id or f"{letter.partition}:{letter.offset}")] = letter
    producer = create_producer(bootstrap)
    await producer.start()
    try:
        for letter in unique.values():
            await producer.send_and_wait(letter.original_topic, letter.value, key=letter.key)
    finally:
        await producer.stop()
    return list(unique.values())
