"""One thin real path through everything: API -> Postgres -> Temporal -> activity -> outbox -> Kafka -> consumer."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlmodel import select
from temporalio.client import Client

from models.platform import OutboxEvent
from pap.db import SessionFactory
from pap.settings import Settings
from tests.support import eventually, read_topic


async def test_echo_crosses_every_component(
    ops_api: httpx.AsyncClient, api: httpx.AsyncClient, temporal_client: Client, settings: Settings
) -> None:
    created = await ops_api.post("/v1/_diagnostics/echo", json={"message": "hello platform"})
    assert created.status_code == 201
    echo = created.json()
    assert echo["status"] == "received"

    result = await temporal_client.get_workflow_handle(echo["workflow_id"]).result()
    assert result == "processed"

    async def current() -> dict[str, Any]:
        return (await ops_api.get(f"/v1/_diagnostics/echo/{echo['id']}")).json()  # type: ignore[no-any-return]

    consumed = await eventually(current, lambda e: e["consumed_at"] is not None, what="consumer confirmation")
    assert consumed["status"] == "consumed"

    events = await read_topic(settings.require("kafka_bootstrap"), "pap.diagnostics")
    mine = [(key, event) for key, event in events if event.subject == echo["id"]]
    assert len(mine) == 1
    key, event = mine[0]
    assert key == echo["id"].encode()
    assert event.type == "diagnostics.echo.processed"
    assert event.data == {"echo_id": echo["id"], "message": "hello platform"}
    assert event.specversion == "1.0" and event.source == "/pap/diagnostics"


async def test_one_trace_follows_the_request_into_the_workflow_activity_and_its_event(
    ops_api: httpx.AsyncClient, api: httpx.AsyncClient, temporal_client: Client, sessions: SessionFactory
) -> None:
    trace_id = uuid.uuid4().hex
    traceparent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    created = (
        await ops_api.post("/v1/_diagnostics/echo", json={"message": "trace me"}, headers={"traceparent": traceparent})
    ).json()
    await temporal_client.get_workflow_handle(created["workflow_id"]).result()
    async with sessions() as session:
        row = (await session.exec(select(OutboxEvent).where(OutboxEvent.subject == created["id"]))).one()
    assert row.traceparent is not None
    assert row.traceparent.split("-")[1] == trace_id
