"""Running Kafka consumers: de-duplicated by event id, retried with backoff, dead-lettered after N failures.

A handler runs inside one database transaction together with the insert that
marks the event processed for that consumer, so a redelivered or duplicated
event is acknowledged and ignored. A failure of the infrastructure a handler
needs (`events.failures.is_transient`) is retried until it passes, holding the
partition; only other failures count towards the dead-letter limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from opentelemetry import trace
from opentelemetry.propagate import extract
from prometheus_client import Counter, Gauge
from pydantic import ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession

from events.envelope import CloudEvent
from events.failures import is_transient
from events.kafka import create_producer, ensure_topics
from events.topics import DEAD_LETTER
from models.base import utcnow
from models.platform import ProcessedEvent
from pap.aio import wait_any
from pap.db import SessionFactory, insert_unless_conflict, transaction

log = structlog.get_logger(__name__)
tracer = trace.get_tracer(__name__)

Handler = Callable[[AsyncSession, CloudEvent], Awaitable[None]]

CONSUMED = Counter("pap_consumer_events_total", "Events handled by consumers", ["consumer", "outcome"])
CONSUMER_LAG = Gauge(
    "pap_consumer_lag_events", "Events on the broker not yet handled", ["consumer", "topic", "partition"]
)


@dataclass(frozen=True)
class ConsumerSpec:
    """A named consumer: its group, the topics it reads and the handler for each event."""

    name: str
    topics: tuple[str, ...]
    handler: Handler
    event_types: frozenset[str] | None = None
    """Only these CloudEvent types reach the handler (others are acknowledged); None means all."""
    ignored_types: frozenset[str] = frozenset()
    """Types acknowledged without a transaction, for a consumer that reads all but a few busy, irrelevant ones."""
    delay_seconds: float = 0.0
    """Handle an event no sooner than this after it happened: a backstop lets the primary path act first."""

    def wants(self, event_type: str) -> bool:
        if event_type in self.ignored_types:
            return False
        return self.event_types is None or event_type in self.event_types


class ConsumerRunner:
    def __init__(
        self,
        spec: ConsumerSpec,
        sessions: SessionFactory,
        bootstrap: str,
        *,
        group_prefix: str = "pap",
        max_attempts: int = 5,
        base_backoff: float = 0.2,
        max_backoff: float = 30.0,
        session_timeout_ms: int = 10_000,
    ) -> None:
        self.spec = spec
        self.sessions = sessions
        self.bootstrap = bootstrap
        self.group_id = f"{group_prefix}.{spec.name}"
        self.max_attempts = max_attempts
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.session_timeout_ms = session_timeout_ms

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, reconnecting when the broker goes away."""
        while not stop.is_set():
            try:
                await self._consume(stop)
            except (KafkaError, OSError) as error:
                log.warning(
                    "consumer lost the broker; reconnecting",
                    consumer=self.spec.name,
                    error=str(error),
                )
            except Exception:  # one consumer's bug must not end the process's other consumers
                log.exception("consumer failed; restarting it", consumer=self.spec.name)
            await wait_any(stop, timeout=1.0)

    async def _consume(self, stop: asyncio.Event) -> None:
        await ensure_topics(self.bootstrap)
        consumer = AIOKafkaConsumer(
            *self.spec.topics,
            bootstrap_servers=self.bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            metadata_max_age_ms=5_000,
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=self.session_timeout_ms // 3,
        )
        producer = create_producer(self.bootstrap)
        try:
            await consumer.start()
            await producer.start()
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=100)
                for partition, records in batches.items():
                    for record in records:
                        if not await self._handle(record, producer, stop):
                            return  # stopped while an event waited (to be due, or out an outage); it is redelivered
                    # One commit per batch: a crash mid-batch redelivers records the dedup table then skips.
                    position = records[-1].offset + 1
                    await consumer.commit({partition: position})
                    self._record_lag(consumer, partition, position)
        finally:
            await consumer.stop()
            await producer.stop()

    def _record_lag(self, consumer: AIOKafkaConsumer, partition: TopicPartition, position: int) -> None:
        """Records between the committed position and the partition's end, as of the last fetch."""
        highwater = consumer.highwater(partition)
        if highwater is not None:
            lag = CONSUMER_LAG.labels(self.spec.name, partition.topic, str(partition.partition))
            lag.set(max(0, highwater - position))

    async def _handle(
        self, record: ConsumerRecord[bytes, bytes], producer: AIOKafkaProducer, stop: asyncio.Event
    ) -> bool:
        """Handle (or skip, or dead-letter) one record; False when `stop` came while it waited."""
        try:
            event = CloudEvent.from_bytes(record.value or b"")
        except ValidationError as error:
            await self._dead_letter(record, producer, f"malformed event: {error.error_count()} errors")
            return True
        if not self.spec.wants(event.type):
            CONSUMED.labels(self.spec.name, "skipped").inc()
            return True
        try:
            wait = seconds_until_due(event.time, self.spec.delay_seconds, utcnow())
        except OverflowError as error:
            await self._dead_letter(record, producer, f"unusable event time {event.time.isoformat()}: {error}")
            return True
        if wait > 0 and await wait_any(stop, timeout=wait):
            return False
        return await self._handle_with_retries(event, record, producer, stop)

    async def _handle_with_retries(
        self, event: CloudEvent, record: ConsumerRecord[bytes, bytes], producer: AIOKafkaProducer, stop: asyncio.Event
    ) -> bool:
        """Retry an outage without limit and anything else `max_attempts` times; False when `stop` came meanwhile."""
        context = extract({"traceparent": event.traceparent} if event.traceparent else {})
        attempts = outages = 0
        while True:
            try:
                with tracer.start_as_current_span(f"consume {event.type}", context=context):
                    handled = await self.handle_once(event)
                CONSUMED.labels(self.spec.name, "handled" if handled else "duplicate").inc()
                return True
            except Exception as error:  # a handler bug must not stop the partition forever
                transient = is_transient(error)
                if transient:
                    outages += 1
                else:
                    attempts += 1
                log.warning(
                    "consumer handler failed",
                    consumer=self.spec.name,
                    event_id=str(event.id),
                    type=event.type,
                    attempt=attempts + outages,
                    transient=transient,
                    error=repr(error),
                )
                if not transient and attempts >= self.max_attempts:
                    await self._dead_letter(record, producer, repr(error))
                    return True
                CONSUMED.labels(self.spec.name, "retried").inc()
                backoff = min(self.max_backoff, self.base_backoff * 2 ** min(attempts + outages - 1, 30))
                if await wait_any(stop, timeout=backoff):
                    return False  # not committed: the next run handles it

    async def handle_once(self, event: CloudEvent) -> bool:
        """Run the handler once in a transaction; False when this consumer already handled the event."""
        async with transaction(self.sessions) as session:
            inserted = await insert_unless_conflict(
                session, ProcessedEvent, {"consumer": self.spec.name, "event_id": event.id}, returning="event_id"
            )
            if inserted.first() is None:
                return False
            await self.spec.handler(session, event)
            return True

    async def _dead_letter(
        self,
        record: ConsumerRecord[bytes, bytes],
        producer: AIOKafkaProducer,
        reason: str,
    ) -> None:
        headers = [
            ("pap-consumer", self.spec.name.encode()),
            ("pap-original-topic", record.topic.encode()),
            ("pap-original-offset", str(record.offset).encode()),
            ("pap-error", reason[:1000].encode()),
        ]
        await producer.send_and_wait(DEAD_LETTER, record.value, key=record.key, headers=headers)
        CONSUMED.labels(self.spec.name, "dead_lettered").inc()
        log.error(
            "event dead-lettered",
            consumer=self.spec.name,
            topic=record.topic,
            reason=reason,
        )


def seconds_until_due(happened: datetime, delay_seconds: float, now: datetime) -> float:
    """How long to hold an event for a consumer running `delay_seconds` behind its events.

    Never longer than the delay, so an event stamped ahead (a producer's clock, or a bogus time) costs no
    more than that; OverflowError when the due time falls past the calendar's end.
    """
    if delay_seconds <= 0:
        return 0.0
    happened = happened if happened.tzinfo else happened.replace(tzinfo=UTC)  # another producer's naive time
    due = happened + timedelta(seconds=delay_seconds)
    return min(max(0.0, (due - now).total_seconds()), delay_seconds)
