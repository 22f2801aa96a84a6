"""The outbox relay: publishes committed outbox rows to Kafka in commit order, then marks them.

One relay holds a PostgreSQL advisory lock at a time so ordering per key is never
interleaved by two publishers; others wait as hot standbys. A failed send is
retried (with backoff, on a fresh producer) from the first unmarked row, so the
broker may see a duplicate but never a reordering of a key's events. The lock
lives on the relay's listening connection: when the database goes away (a
restart, a failover) the relay reconnects and competes for the lock again.

The one gap: a row the broker can never take (`UNPUBLISHABLE`, e.g. larger than
any request may be) is parked (`failed_at`, `error`) instead of blocking every
row behind it; an operator fixes it and clears `failed_at` to re-queue it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from prometheus_client import Counter, Gauge
from sqlalchemy import func, update
from sqlalchemy.exc import SQLAlchemyError
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

UNPUBLISHABLE: tuple[type[KafkaError], ...] = (MessageSizeTooLargeError,)
"""Errors that say the broker will never take this record, however often it is sent."""
DATABASE_ERRORS = (SQLAlchemyError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
"""The database (or the way to it) failing: the relay gives up its lock and starts over."""

OUTBOX_PUBLISHED = Counter("pap_outbox_published_total", "Outbox events published to Kafka", ["topic"])
OUTBOX_LAG = Gauge("pap_outbox_lag_events", "Outbox events committed but not yet published")
OUTBOX_PARKED = Counter("pap_outbox_parked_total", "Outbox events set aside: the broker can never take them", ["topic"])
OUTBOX_PARKED_ROWS = Gauge("pap_outbox_parked_events", "Outbox events set aside and waiting for an operator")
RELAY_FAILURES = Counter("pap_outbox_publish_failures_total", "Failed attempts to publish an outbox batch")


class LeadershipLost(Exception):
    """The connection holding the relay's lock closed: another relay may lead now."""


PENDING = (col(OutboxEvent.published_at).is_(None), col(OutboxEvent.failed_at).is_(None))
"""Rows still to publish: neither published nor parked."""


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
        """Publish until `stop` is set, starting over (with backoff) whenever the database goes away."""
        backoff = 0.1
        while not stop.is_set():
            try:
                await self._lead(stop)
            except (*DATABASE_ERRORS, LeadershipLost) as error:
                log.warning("outbox relay lost the database; reconnecting", error=repr(error), backoff=backoff)
                await wait_any(stop, timeout=backoff)
                backoff = min(backoff * 2, self.max_backoff)

    async def _lead(self, stop: asyncio.Event) -> None:
        """Take the lock (waiting as a standby), then publish while its connection lives."""
        listener = await asyncpg.connect(asyncpg_dsn(self.engine.url))
        try:
            if not await self._acquire_leadership(listener, stop):
                return
            await listener.add_listener("pap_outbox", self._on_notify)
            log.info("outbox relay is the leader")
            await self._publish(listener, stop)
        finally:
            await self._reset_producer()
            await _close(listener)

    async def _publish(self, listener: asyncpg.Connection, stop: asyncio.Event) -> None:
        backoff = 0.1
        while not stop.is_set():
            if listener.is_closed():
                raise LeadershipLost("the connection holding the relay lock closed")
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

    def _on_notify(self, *_: Any) -> None:
        self._wakeup.set()

    async def _acquire_leadership(self, conn: asyncpg.Connection, stop: asyncio.Event) -> bool:
        """True once this connection holds the relay lock; False when stopped first."""
        while not stop.is_set():
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK_ID):
                return True
            await wait_any(stop, timeout=1.0)
        return False

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
        """Publish the oldest unpublished events, in order, parking any the broker can never take;
        returns how many rows it settled (published or parked)."""
        async with transaction(self.sessions) as session:
            rows = (
                await session.exec(
                    select(OutboxEvent)
                    .where(*PENDING)
                    .order_by(col(OutboxEvent.seq))
                    .limit(self.batch_size)
                    .with_for_update()
                )
            ).all()
            # A short batch is the whole backlog; only a full one needs the count.
            lag = len(rows)
            if lag == self.batch_size:
                lag = await session.scalar(select(func.count()).select_from(OutboxEvent).where(*PENDING)) or lag
            OUTBOX_LAG.set(lag)
            if not rows:
                return 0
            producer = await self._get_producer()
            if time.monotonic() >= self._topics_checked_at + TOPIC_CHECK_INTERVAL:
                await self._ensure_topics_known(producer, {row.topic for row in rows})
                self._topics_checked_at = time.monotonic()
            sent: list[OutboxEvent] = []
            deliveries: list[asyncio.Future[Any]] = []
            parked: list[tuple[OutboxEvent, str]] = []
            for row in rows:
                try:
                    deliveries.append(
                        await producer.send(row.topic, to_cloud_event(row).to_bytes(), key=row.key.encode())
                    )
                except UNPUBLISHABLE as error:
                    parked.append((row, repr(error)))
                    continue
                sent.append(row)
            await asyncio.wait_for(asyncio.gather(*deliveries), timeout=30)
            now = utcnow()
            if sent:
                await session.execute(
                    update(OutboxEvent)
                    .where(col(OutboxEvent.seq).in_([row.seq for row in sent]))
                    .values(published_at=now)
                )
            for row, reason in parked:
                await session.execute(
                    update(OutboxEvent).where(col(OutboxEvent.seq) == row.seq).values(failed_at=now, error=reason)
                )
        for row in sent:
            OUTBOX_PUBLISHED.labels(row.topic).inc()
        for row, reason in parked:
            OUTBOX_PARKED.labels(row.topic).inc()
            log.error("outbox event parked: the broker can never take it", event_id=str(row.id), error=reason[:500])
        OUTBOX_LAG.set(max(0, lag - len(rows)))
        return len(rows)


async def _close(listener: asyncpg.Connection) -> None:
    """Close politely when the server is still there; otherwise just drop the socket."""
    try:
        await listener.close(timeout=5)
    except (*DATABASE_ERRORS, TimeoutError):
        listener.terminate()
