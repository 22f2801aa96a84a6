"""PostgreSQL LISTEN/NOTIFY: notifying inside a transaction, and one dedicated connection that listens.

`notify` goes through the caller's transaction, so PostgreSQL delivers it only if
that transaction commits: a listener never hears of a change that rolled back, and
never hears of one before it is visible to readers. `Listener` keeps a single
connection outside the pool (LISTEN needs a session of its own), reconnects with
backoff when it drops, and calls `on_connect` after every (re)connect, because
whatever was notified while it was away is lost and its users must re-check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import suppress

import asyncpg
import structlog
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlmodel.ext.asyncio.session import AsyncSession

from pap.aio import wait_any

log = structlog.get_logger(__name__)

_CONNECTION_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


async def notify(session: AsyncSession, channel: str, payload: str) -> None:
    """Queue a notification in the session's transaction; PostgreSQL sends it on commit (folding duplicates)."""
    await session.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload})


def asyncpg_dsn(url: str | URL) -> str:
    """A SQLAlchemy database URL as a plain asyncpg DSN, for connections that must live outside the pool."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Listener:
    """LISTENs on one channel on its own connection until closed; `on_notify` gets each payload."""

    def __init__(
        self,
        dsn: str,
        channel: str,
        on_notify: Callable[[str], None],
        *,
        on_connect: Callable[[], None] = lambda: None,
        application_name: str = "pap-listener",
        check_every: float = 15.0,
        max_backoff: float = 5.0,
    ) -> None:
        self.channel = channel
        self._dsn = dsn
        self._on_notify = on_notify
        self._on_connect = on_connect
        self._application_name = application_name
        self._check_every = check_every
        self._max_backoff = max_backoff
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    async def wait_listening(self) -> None:
        """Until the LISTEN is in place (tests and start-up checks; not needed for correctness)."""
        await self._listening.wait()

    def start(self) -> None:
        """Connect in the background: the process starts (and serves) while the database is away."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"listen-{self.channel}")

    async def close(self) -> None:
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                await self._listen_until_lost()
                backoff = 0.1
            except _CONNECTION_ERRORS as error:
                log.warning("listener connection failed; reconnecting", channel=self.channel, error=str(error))
            except Exception:  # anything else too: a dead listener would silently stop every wake-up
                log.exception("listener failed; reconnecting", channel=self.channel)
            await wait_any(self._stop, timeout=backoff)
            backoff = min(backoff * 2, self._max_backoff)

    async def _listen_until_lost(self) -> None:
        """One connection's life: LISTEN, then wait until it is lost or the listener is closed."""
        conn = await asyncpg.connect(
            self._dsn, timeout=10, server_settings={"application_name": self._application_name}
        )
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        try:
            await conn.add_listener(self.channel, self._deliver)
            self._listening.set()
            log.info("listening", channel=self.channel)
            self._on_connect()
            while not self._stop.is_set() and not lost.is_set():
                if not await wait_any(self._stop, lost, timeout=self._check_every):
                    await conn.execute("SELECT 1", timeout=5)  # finds a half-open connection
        finally:
            self._listening.clear()
            if not conn.is_closed():
                try:
                    await conn.close(timeout=5)
                except _CONNECTION_ERRORS:
                    conn.terminate()
        if not self._stop.is_set():
            log.warning("listener connection lost; reconnecting", channel=self.channel)

    def _deliver(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        self._on_notify(str(payload))
