"""The outbox wakes the relay: committing an event NOTIFYs `pap_outbox` (the table's trigger does it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text

from events.outbox import record_event
from pap.db import SessionFactory, transaction
from pap.pg_notify import asyncpg_dsn
from pap.settings import Settings


@pytest.fixture
async def notifying_backends(settings: Settings) -> AsyncIterator[asyncio.Queue[int]]:
    """The server process id of every transaction that notified `pap_outbox` from now on."""
    heard: asyncio.Queue[int] = asyncio.Queue()
    connection = await asyncpg.connect(asyncpg_dsn(settings.require("database_url")))
    await connection.add_listener("pap_outbox", lambda _connection, pid, _channel, _payload: heard.put_nowait(pid))
    yield heard
    await connection.close()


async def test_committing_an_event_wakes_the_relay(
    sessions: SessionFactory, notifying_backends: asyncio.Queue[int]
) -> None:
    async with transaction(sessions) as session:
        backend = await session.scalar(text("SELECT pg_backend_pid()"))
        await record_event(session, topic="pap.diagnostics", key="k", type="test.outbox", source="/test", data={})
    while (await asyncio.wait_for(notifying_backends.get(), timeout=10)) != backend:
        pass  # another process's event (the platform is running)
