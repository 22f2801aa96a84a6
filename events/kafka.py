"""Kafka clients configured once for the platform: an idempotent, acks=all producer and topic creation."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from events.topics import ALL_TOPICS


def create_producer(bootstrap: str, *, idempotent: bool = False) -> AIOKafkaProducer:
    """acks=all always; the idempotent producer where the broker supports it (Kafka does, Tansu 0.6 not).

    Ordering per key holds either way: aiokafka keeps one in-flight batch per partition.
    """
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=idempotent,
        linger_ms=2,
        request_timeout_ms=10_000,
        retry_backoff_ms=200,
    )


async def ensure_topics(bootstrap: str, topics: tuple[str, ...] = ALL_TOPICS, partitions: int = 3) -> None:
    """Create the platform's topics when missing (idempotent)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics if t not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


async def check_kafka(bootstrap: str, timeout: float = 3.0) -> None:
    """Raise unless the broker answers a metadata request within `timeout` seconds."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        await asyncio.wait_for(admin.list_topics(), timeout)
    except (KafkaError, TimeoutError, OSError) as error:
        raise RuntimeError(f"kafka at {bootstrap} is not reachable: {error}") from error
    finally:
        await admin.close()
