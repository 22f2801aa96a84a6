"""One thin real path through everything: API -> Postgres -> Temporal -> activity -> outbox -> Kafka -> consumer."""

from __future__ import annotations

from typing import Any

import httpx
from temporalio.client import Client

from pap.settings import Settings
from tests.support import eventually, read_topic


async def test_echo_crosses_every_component(
    api: httpx.AsyncClient, temporal_client: Client, settings: Settings
) -> None:
    created = await api.post("/v1/_diagnostics/echo", json={"message": "hello platform"})
    assert created.status_code == 201
    echo = created.json()
    assert echo["status"] == "received"

    result = await temporal_client.get_workflow_handle(echo["workflow_id"]).result()
    assert result == "processed"

    async def current() -> dict[str, Any]:
        return (await api.get(f"/v1/_diagnostics/echo/{echo['id']}")).json()  # type: ignore[no-any-return]

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
