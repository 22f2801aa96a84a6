"""The outbox relay: publishes committed outbox rows to Kafka in commit order, then marks them.

One relay holds a PostgreSQL advisory lock at a time so ordering per key is never
interleaved by two publishers; others wait as hot standbys. A failed send is
retried (with backoff, on a fresh producer) from the first unmarked row, so the
broker may see a duplicate but never a gap or a reordering of a key's events.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge
from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from events.envelope import CloudEvent
from events.kafka import ensure_topics
from models.base import utcnow
from models.platform import OutboxEvent
from pap.aio import wait_any
from pap.db import SessionFactory, transaction
from pap.pg_notify import asyncpg_dsn

log = structlog.get_logger(__name__)

RELAY_LOCK_ID = 0x0A9_0B0C  # any constant shared by every relay process
TOPIC_CHECK_INTERVAL = 1.0
"""Seconds between checks that the broker still knows the batch's topics (a metadata round trip)."""

OUTBOX_PUBLISHED = Counter("pap_outbox_published_total", "Outbox events published to Kafka", ["topic"])
OUTBOX_LAG = Gauge("pap_outbox_lag_events", "Outbox events committed but not yet published")
RELAY_FAILURES = Counter("pap_outbox_publish_failures_total", "Failed attempts to publish an outbox batch")


def to_cloud_event(row: OutboxEvent) -> CloudEvent:
    return CloudEvent(
        id=row.id,
        source=row.source,
        type=row.type,
        subject=row.subject,
        time=row.created_at,
        data=row.data,
        traceparent=row.traceparent,
    )


class OutboxRelay:
    def __init__(
        self,
        engine: AsyncEngine,
        sessions: SessionFactory,
        producer_factory: Callable[[], AIOKafkaProducer],
        bootstrap: str,
        *,
        batch_size: int = 500,
        poll_interval: float = 0.2,
        max_backoff: float = 5.0,
    ) -> None:
        self.engine = engine
        self.sessions = sessions
        self.producer_factory = producer_factory
        self.bootstrap = bootstrap
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self._wakeup = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._topics_checked_at = -TOPIC_CHECK_INTERVAL

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until `stop` is set."""
        listener = await asyncpg.connect(asyncpg_dsn(self.engine.url))
        try:
            await self._acquire_leadership(listener, stop)
            await listener.add_listener("pap_outbox", self._on_notify)
            log.info("outbox relay is the leader")
            backoff = 0.1
            while not stop.is_set():
                try:
                    published = await self.publish_batch()
                    backoff = 0.1
                except (KafkaError, OSError, TimeoutError) as error:
                    RELAY_FAILURES.inc()
                    log.warning(
                        "outbox publish failed; retrying",
                        error=str(error),
                        backoff=backoff,
                    )
                    await self._reset_producer()
                    await wait_any(stop, timeout=backoff)
                    backoff = min(backoff * 2, self.max_backoff)
                    continue
                if published < self.batch_size:
                    self._wakeup.clear()
                    await wait_any(stop, self._wakeup, timeout=self.poll_interval)
        finally:
            await self._reset_producer()
            await listener.close()

    def _on_notify(self, *_: Any) -> None:
        self._wakeup.set()

    async def _acquire_leadership(self, conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK_ID):
                return
            await wait_any(stop, timeout=1.0)

    async def _get_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            await ensure_topics(self.bootstrap)
            producer = self.producer_factory()
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _reset_producer(self) -> None:
        producer, self._producer = self._producer, None
        self._topics_checked_at = -TOPIC_CHECK_INTERVAL  # the next batch checks the broker's topics first
        if producer is not None:
            try:
                await producer.stop()
            except (KafkaError, OSError):
                log.debug("producer stop failed", exc_info=True)

    async def _ensure_topics_known(self, producer: AIOKafkaProducer, topics: set[str]) -> None:
        """Re-create topics a restarted (memory-only) broker forgot, before sending to them."""
        metadata = await producer.client.fetch_all_metadata()
        missing = topics - metadata.topics()
        if missing:
            log.warning("broker lost topics; re-creating them", topics=sorted(missing))
            await ensure_topics(self.bootstrap, tuple(sorted(missing)))
            await producer.client.force_metadata_update()

    async def publish_batch(self) -> int:
        """Publish the oldest unpublished events, in order; returns how many were published."""
        async with transaction(self.sessions) as session:
            rows = (
                await session.exec(
                    select(OutboxEvent)
                    .where(col(OutboxEvent.published_at).is_(None))
                    .order_by(col(OutboxEvent.seq))
                    .limit(self.batch_size)
                    .with_for_update()
                )
            ).all()
            # A short batch is the whole backlog; only a full one needs the count.
            lag = len(rows)
            if lag == self.batch_size:
                lag = (
                    await session.scalar(
                        select(func.count()).select_from(OutboxEvent).where(col(OutboxEvent.published_at).is_(None))
                    )
                    or lag
                )
            OUTBOX_LAG.set(lag)
            if not rows:
                return 0
            producer = await self._get_producer()
            if time.monotonic() >= self._topics_checked_at + TOPIC_CHECK_INTERVAL:
                await self._ensure_topics_known(producer, {row.topic for row in rows})
                self._topics_checked_at = time.monotonic()
            pending = [
                await producer.send(row.topic, to_cloud_event(row).to_bytes(), key=row.key.encode()) for row in rows
            ]
            await asyncio.wait_for(asyncio.gather(*pending), timeout=30)
            await session.execute(
                update(OutboxEvent)
                .where(col(OutboxEvent.seq).in_([row.seq for row in rows]))
                .values(published_at=utcnow())
            )
        for row in rows:
            OUTBOX_PUBLISHED.labels(row.topic).inc()
        OUTBOX_LAG.set(max(0, lag - len(rows)))
        return len(rows)
