"""Waiting for a deal to change: one LISTEN connection per API process wakes the requests waiting on a deal.

Long-polling requests register a `DealWatch` for their deal and hold no database
connection while they wait; a `pap_deal_changed` notification (sent on commit by
every write to the deal projection) wakes that deal's watches. After a reconnect
every watch is woken, since notifications sent meanwhile were lost.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import structlog
from prometheus_client import Gauge

from pap.aio import wait_any
from pap.pg_notify import Listener
from services.deals.changes import CHANNEL

log = structlog.get_logger(__name__)

APPLICATION_NAME = "pap-deal-changes"
"""The listener's `application_name` in pg_stat_activity."""

LONG_POLLS_WAITING = Gauge("pap_deal_long_polls_waiting", "Requests waiting for a deal to change (long polls)")


class DealWatch:
    """One request's interest in one deal."""

    def __init__(self) -> None:
        self._woken = asyncio.Event()

    def wake(self) -> None:
        self._woken.set()

    async def wait(self, timeout: float) -> None:
        """Until the deal may have changed since the watch began or last woke, or `timeout` seconds pass."""
        with LONG_POLLS_WAITING.track_inprogress():
            await wait_any(self._woken, timeout=timeout)
        self._woken.clear()  # the caller re-reads next: a change committed meanwhile wakes the watch again


class DealChanges:
    def __init__(self, dsn: str) -> None:
        self._watches: dict[uuid.UUID, set[DealWatch]] = {}
        self.listener = Listener(
            dsn, CHANNEL, self._on_notify, on_connect=self._wake_all, application_name=APPLICATION_NAME
        )

    @contextmanager
    def watch(self, deal_id: uuid.UUID) -> Iterator[DealWatch]:
        """Begin watching before the first read, so that no change between read and wait slips by."""
        watch = DealWatch()
        watches = self._watches.setdefault(deal_id, set())
        watches.add(watch)
        try:
            yield watch
        finally:
            watches.discard(watch)
            if not watches:
                self._watches.pop(deal_id, None)

    def _on_notify(self, payload: str) -> None:
        try:
            deal_id = uuid.UUID(payload)
        except ValueError:
            log.warning("ignored a deal-change notification", payload=payload[:64])
            return
        for watch in self._watches.get(deal_id, ()):
            watch.wake()

    def _wake_all(self) -> None:
        for watches in self._watches.values():
            for watch in watches:
                watch.wake()


@asynccontextmanager
async def open_deal_changes(dsn: str) -> AsyncIterator[DealChanges]:
    """The process's deal-change listener, connecting in the background, closed at exit."""
    changes = DealChanges(dsn)
    changes.listener.start()
    try:
        yield changes
    finally:
        await changes.listener.close()
