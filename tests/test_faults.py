"""Faults the platform must survive: the broker going away, a worker killed mid-workflow."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import func
from sqlmodel import col, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from events.outbox import record_event
from models.platform import OutboxEvent
from pap.db import SessionFactory, transaction
from pap.stack.embedded import EmbeddedStack
from tests.support import eventually, read_topic


async def _unpublished(sessions: SessionFactory) -> int:
    async with sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(OutboxEvent).where(col(OutboxEvent.published_at).is_(None))
        )
    return int(count or 0)


async def test_outbox_holds_events_while_kafka_is_down_and_drains_them_in_order(
    ops_api: httpx.AsyncClient,
    platform: EmbeddedStack,
    api: httpx.AsyncClient,
    sessions: SessionFactory,
    temporal_client: Client,
) -> None:
    supervisor = platform.supervisor
    key = f"order-test-{uuid.uuid4()}"
    await supervisor.stop("kafka")
    try:
        ready = await api.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["kafka"].startswith("error")

        accepted = await ops_api.post("/v1/_diagnostics/echo", json={"message": "while kafka is down"})
        assert accepted.status_code == 201
        assert await temporal_client.get_workflow_handle(accepted.json()["workflow_id"]).result() == "processed"
        for n in range(20):
            async with transaction(sessions) as session:
                await record_event(
                    session, topic="pap.diagnostics", key=key, type="test.sequence", source="/tests", data={"n": n}
                )
        assert await _unpublished(sessions) >= 21
    finally:
        await supervisor.restart("kafka")

    await eventually(lambda: _unpublished(sessions), lambda n: n == 0, timeout=60, what="outbox drained")
    events = await read_topic(platform.settings.require("kafka_bootstrap"), "pap.diagnostics")
    sequence = [event.data["n"] for k, event in events if k == key.encode()]
    assert sequence == list(range(20))

    async def echo() -> dict[str, Any]:
        return (await ops_api.get(f"/v1/_diagnostics/echo/{accepted.json()['id']}")).json()  # type: ignore[no-any-return]

    await eventually(echo, lambda e: e["status"] == "consumed", timeout=60, what="consumer caught up")
    assert (await api.get("/health/ready")).status_code == 200


async def test_workflow_finishes_when_a_killed_worker_comes_back(
    ops_api: httpx.AsyncClient, platform: EmbeddedStack, api: httpx.AsyncClient, temporal_client: Client
) -> None:
    created = (
        await ops_api.post("/v1/_diagnostics/echo", json={"message": "survive a crash", "delay_seconds": 2})
    ).json()
    handle = temporal_client.get_workflow_handle(created["workflow_id"])

    async def timer_started() -> bool:
        history = await handle.fetch_history()
        return any(e.event_type == EventType.EVENT_TYPE_TIMER_STARTED for e in history.events)

    await eventually(timer_started, what="workflow waiting on its timer")
    await platform.supervisor.kill("worker")
    await platform.supervisor.restart("worker")
    assert await handle.result() == "processed"
