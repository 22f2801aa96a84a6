"""A compliance hold pauses a running deal and lifting it resumes; ops reads its history and cancels it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from pap.cli import app as cli_app
from pap.db import SessionFactory
from services.identity.permissions import Role
from tests.deal_support import Parties, TokenFor, deal_request, parties
from tests.support import eventually
from tests.test_deals_e2e import deal_at, sign_pending


@pytest.fixture
async def people(api: httpx.AsyncClient, sessions: SessionFactory, token_for: TokenFor) -> Parties:
    return await parties(api, sessions, token_for, rofr_days=30, issuer_approval_required=False)


async def test_held_deal_pauses_until_lifted_and_ops_sees_it_all(
    api: httpx.AsyncClient, people: Parties, token_for: TokenFor
) -> None:
    created = await api.post(
        "/v1/deals",
        json=deal_request(people, quantity=20, price="15.00"),
        headers=people.manager,
    )
    assert created.status_code == 201, created.text
    deal_id = created.json()["id"]
    await deal_at(api, deal_id, people.manager, "awaiting_issuer")
    before_hold = (await api.get(f"/v1/deals/{deal_id}", headers=people.manager)).json()["timeline"][-1]["at"]

    held = await api.post(
        f"/v1/compliance/deals/{deal_id}/hold", json={"reason": "adverse media"}, headers=people.compliance
    )
    assert held.status_code == 200, held.text
    assert held.json()["on_hold"] is True
    assert (await api.get(f"/v1/deals/{deal_id}", headers=people.manager)).json()["on_hold"] is True

    await sign_pending(api, deal_id, people, {"stock_transfer_notice"})
    decision = await api.post(f"/v1/deals/{deal_id}/issuer-decision", json={"decision": "waive"}, headers=people.issuer)
    assert decision.status_code == 200, decision.text

    async def read() -> dict[str, Any]:
        return (await api.get(f"/v1/deals/{deal_id}", headers=people.manager)).json()  # type: ignore[no-any-return]

    paused = await eventually(
        read, lambda d: any("on hold" in e["detail"] for e in d["timeline"]), timeout=60, what="deal paused"
    )
    assert paused["stage"] == "awaiting_issuer" and paused["on_hold"] is True

    runner = CliRunner()
    token = people.compliance["Authorization"].removeprefix("Bearer ")
    lifted = runner.invoke(cli_app, ["ops", "lift", deal_id, "--api", str(api.base_url), "--token", token])
    assert lifted.exit_code == 0, lifted.output
    moved = await deal_at(api, deal_id, people.manager, "awaiting_signatures")
    assert moved["on_hold"] is False

    ops = token_for(uuid.uuid4(), Role.ADMIN)
    retry = await api.post(f"/v1/ops/deals/{deal_id}/retry", headers=ops)
    assert retry.status_code == 200, retry.text
    assert retry.json()["status"] == "running"

    history = (await api.get(f"/v1/ops/deals/{deal_id}/history", headers=ops)).json()["events"]
    workflow = [(e["kind"], e["name"]) for e in history if e["source"] == "workflow"]
    assert ("workflow_execution_signaled", "place_hold") in workflow
    assert ("workflow_execution_signaled", "lift_hold") in workflow
    assert ("workflow_execution_signaled", "document_signed") in workflow
    assert ("workflow_execution_update_accepted", "issuer_decision") in workflow
    assert ("activity_task_completed", "deals.confirm_participants") in workflow
    assert {"audit", "timeline"} <= {e["source"] for e in history}
    times = [datetime.fromisoformat(e["at"]) for e in history]
    assert times == sorted(times)

    earlier = await api.get(f"/v1/ops/deals/{deal_id}/history", params={"as_of": before_hold}, headers=ops)
    names = {e["name"] for e in earlier.json()["events"]}
    assert "place_hold" not in names and "deals.confirm_participants" in names

    cancelled = await api.post(f"/v1/ops/deals/{deal_id}/cancel", json={"reason": "ops cancel"}, headers=ops)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["stage"] == "cancelled"
    again = await api.post(f"/v1/ops/deals/{deal_id}/cancel", json={"reason": "again"}, headers=ops)
    assert again.status_code == 409

    audit = await api.get("/v1/admin/audit", params={"entity_id": deal_id}, headers=ops)
    actions = {e["action"]: e for e in audit.json()["items"]}
    requested = [e["data"]["reason"] for e in audit.json()["items"] if e["action"] == "ops.deal_cancel_requested"]
    assert sorted(requested) == ["again", "ops cancel"]  # the refused second attempt is on record too
    for action in (
        "compliance.deal_hold_placed",
        "compliance.deal_hold_lifted",
        "ops.deal_retry_requested",
        "ops.deal_history_viewed",
        "ops.deal_cancelled",
    ):
        assert action in actions, action
    assert actions["ops.deal_cancelled"]["actor_id"] is not None
