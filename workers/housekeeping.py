"""Housekeeping: every few minutes, delete in batches the rows no reader needs any more.

Without it the outbox, the consumers' de-duplication marks, the pricing
quotes (one row per order-book change), spent password resets and stored idempotent responses grow for ever;
it also times out ledger holds past their expiry (their funds are free again). Each table is pruned by
its owner's function; a transaction-scoped advisory lock per table lets one
consumers replica prune it while the others skip the round.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import structlog
from prometheus_client import Counter
from sqlmodel.ext.asyncio.session import AsyncSession

from api.idempotency import prune_idempotency_records
from events.retention import prune_processed_events, prune_published_outbox
from models.base import utcnow
from pap.aio import wait_any
from pap.db import SessionFactory, transaction, try_lock_for_transaction
from pap.settings import Settings
from services.identity.password_reset import prune_password_resets
from services.payments import expire_pending_holds
from services.pricing import prune_quotes

log = structlog.get_logger(__name__)

PRUNED = Counter("pap_housekeeping_pruned_rows_total", "Rows deleted by housekeeping", ["table"])


class Pruner(Protocol):
    def __call__(self, session: AsyncSession, *, before: datetime, limit: int) -> Awaitable[int]: ...


@dataclass(frozen=True)
class Retention:
    """How long each kind of row is kept."""

    published_outbox: timedelta
    processed_events: timedelta
    quotes: timedelta
    password_resets: timedelta
    idempotency_keys: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> Retention:
        return cls(
            published_outbox=timedelta(days=settings.outbox_retention_days),
            processed_events=timedelta(days=settings.processed_event_retention_days),
            quotes=timedelta(days=settings.pricing_quote_retention_days),
            password_resets=timedelta(days=settings.password_reset_retention_days),
            idempotency_keys=timedelta(days=settings.idempotency_key_retention_days),
        )


async def _expire_holds(session: AsyncSession, *, before: datetime, limit: int) -> int:
    """Ledger holds past their expiry time out, so the funds they reserve are available again."""
    return await expire_pending_holds(session, before, limit=limit)


class Housekeeper:
    def __init__(self, sessions: SessionFactory, retention: Retention, *, interval: float, batch_size: int) -> None:
        self.sessions = sessions
        self.retention = retention
        self.interval = interval
        self.batch_size = batch_size

    async def run(self, stop: asyncio.Event) -> None:
        """Prune now and then every `interval` seconds until `stop`; a failed round is logged, never fatal."""
        while not stop.is_set():
            try:
                await self.prune_once(stop)
            except Exception:  # housekeeping must never take the consumers down with it
                log.exception("housekeeping round failed; retrying next round")
            await wait_any(stop, timeout=self.interval)

    async def prune_once(self, stop: asyncio.Event) -> dict[str, int]:
        """One round over every table; returns how many rows each lost."""
        now = utcnow()
        jobs: dict[str, tuple[Pruner, datetime]] = {
            "platform.outbox_event": (prune_published_outbox, now - self.retention.published_outbox),
            "platform.processed_event": (prune_processed_events, now - self.retention.processed_events),
            "pricing.quote": (prune_quotes, now - self.retention.quotes),
            "identity.password_reset": (prune_password_resets, now - self.retention.password_resets),
            "platform.idempotency_record": (prune_idempotency_records, now - self.retention.idempotency_keys),
            "payments.expired_hold": (_expire_holds, now),
        }
        pruned: dict[str, int] = {}
        for table, (prune, before) in jobs.items():
            pruned[table] = await self._prune_table(table, prune, before, stop)
        if any(pruned.values()):
            log.info("housekeeping pruned rows", **pruned)
        return pruned

    async def _prune_table(self, table: str, prune: Pruner, before: datetime, stop: asyncio.Event) -> int:
        total = 0
        while not stop.is_set():
            async with transaction(self.sessions) as session:
                if not await try_lock_for_transaction(session, f"housekeeping:{table}"):
                    break  # another replica is pruning it
                deleted = await prune(session, before=before, limit=self.batch_size)
            PRUNED.labels(table).inc(deleted)
            total += deleted
            if deleted < self.batch_size:
                break
        return total
