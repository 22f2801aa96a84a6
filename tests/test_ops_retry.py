"""Ops retry a deal's failing step once its cause is fixed, instead of waiting out the backoff."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import httpx
from temporalio.client import Client, WorkflowUpdateStage

from models.base import Money
from models.deals import DealState, SettlementConfirmation
from models.payments import PaymentReceived
from pap.db import SessionFactory, transaction
from services import payments
from services.identity.permissions import Role
from tests.deal_support import TokenFor, deal_request, parties
from tests.support import eventually
from tests.test_deals_e2e import deal_at, sign_pending


async def pay(sessions: SessionFactory, payment_id: uuid.UUID, amount: str) -> None:
    async with transaction(sessions) as session:
        await payments.record_provider_payment(
            session,
            event_id=str(uuid.uuid4()),
            payment_id=payment_id,
            status="succeeded",
            amount=Money(amount=Decimal(amount)),
        )


async def test_ops_retry_a_failing_settlement_step_after_fixing_its_cause(
    api: httpx.AsyncClient, sessions: SessionFactory, token_for: TokenFor, temporal_client: Client
) -> None:
    people = await parties(api, sessions, token_for)
    ops = token_for(uuid.uuid4(), Role.ADMIN)
    created = await api.post(
        "/v1/deals",
        json=deal_request(people, quantity=10, price="10.00"),
        headers=people.manager,
    )
    deal_id = created.json()["id"]
    await deal_at(api, deal_id, people.manager, "awaiting_issuer")
    await sign_pending(api, deal_id, people, {"stock_transfer_notice"})
    await api.post(f"/v1/deals/{deal_id}/issuer-decision", json={"decision": "waive"}, headers=people.issuer)
    await deal_at(api, deal_id, people.manager, "awaiting_signatures")
    await sign_pending(api, deal_id, people, {"stock_transfer_agreement", "joinder"})
    await deal_at(api, deal_id, people.manager, "awaiting_funding")
    instructions = (await api.post(f"/v1/deals/{deal_id}/funding", headers=people.buyer.headers)).json()
    payment_id = uuid.UUID(instructions["payment_id"])

    # An incident: the workflow hears "funded" while the escrow holds only part of the price.
    await pay(sessions, payment_id, "40.00")
    handle = temporal_client.get_workflow_handle(f"deal-{deal_id}")
    await handle.signal(
        "payment_received",
        PaymentReceived(
            payment_id=payment_id, deal_id=uuid.UUID(deal_id), amount=Money(amount=Decimal(40)), funded=True
        ),
    )
    await deal_at(api, deal_id, people.manager, "settling")
    await handle.start_update(
        "confirm_settlement",
        SettlementConfirmation(actor_id=uuid.uuid4()),
        wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        result_type=DealState,
    )

    async def report() -> dict[str, Any]:
        return (await api.post(f"/v1/ops/deals/{deal_id}/retry", headers=ops)).json()  # type: ignore[no-any-return]

    failing = await eventually(
        report, lambda r: "deals.release_escrow" in r["retried"], timeout=60, what="a failing step"
    )
    step = next(p for p in failing["pending_activities"] if p["activity"] == "deals.release_escrow")
    assert step["last_failure"]
    assert failing["status"] == "running"

    await pay(sessions, payment_id, "60.00")  # ops make the escrow whole
    await report()
    closed = await deal_at(api, deal_id, people.manager, "closed")
    assert closed["stage"] == "closed"
    reconciliation = (await api.get("/v1/admin/reconciliation", headers=people.compliance)).json()
    assert reconciliation["ledger_balanced"] and reconciliation["shares_conserved"]
    audit = (await api.get(f"/v1/admin/audit?entity_id={deal_id}", headers=people.compliance)).json()["items"]
    assert "ops.deal_retry_requested" in {entry["action"] for entry in audit}
