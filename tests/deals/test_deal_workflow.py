"""DealExecution on the time-skipping server, with the real activities against the real database.

Signals stand in for the humans and providers (the end-to-end test drives the real
signing and payment paths); each branch checks the compensations left nothing behind.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import text
from temporalio import activity
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError, WorkflowUpdateStage
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.deals import DealActivities
from api.routers.deals import update_deal_workflow
from models.base import Money
from models.companies import BlackoutWindow
from models.deals import (
    CancelInput,
    DealRef,
    DealStage,
    DealState,
    DealWorkflowInput,
    HoldInput,
    IssuerDecision,
    IssuerDecisionInput,
    SettlementConfirmation,
    StageChange,
)
from models.documents import DocumentDeclined, DocumentKind
from models.marketplace import OrderStatus, Side
from pap.db import SessionFactory, transaction
from pap.settings import Settings
from pap.storage import LocalObjectStore
from services import deals, documents, holdings, marketplace, payments
from services.deals.errors import DealStageConflict
from tests.deal_support import Parties, TokenFor, brokered_deal
from tests.deals.workflow_support import (
    at_stage,
    available,
    backup_buyer_offered,
    escrow,
    fund,
    place_order,
    sign_all,
    start,
    state,
    through_issuer,
    to_funding,
    update_and_finish,
)
from tests.factories import make_verified_buyer
from tests.histories.record import save_if_recording
from tests.marketplace_support import order_body, place
from tests.support import eventually, waiting_for_a_lock
from workers.registry import activity_methods
from workflows.deals import DealExecutionWorkflow

pytestmark = pytest.mark.usefixtures("platform")


async def test_happy_path_moves_money_and_shares_once(
    time_skipping_env: WorkflowEnvironment, worker: str, people: Parties, sessions: SessionFactory
) -> None:
    params = await brokered_deal(sessions, people, quantity=100, price="12.50")
    handle = await start(time_skipping_env, worker, params)
    await to_funding(handle, params)
    await fund(sessions, handle, params, people.buyer.id)
    await at_stage(handle, DealStage.SETTLING)
    done = await update_and_finish(handle, "confirm_settlement", SettlementConfirmation(actor_id=params.company_id))
    assert done is DealStage.CLOSED
    assert await escrow(sessions, params.deal_id) == 0
    async with sessions() as session:
        assert await holdings.available_shares(session, people.buyer.id, people.security_id) == 100
        assert await holdings.available_shares(session, people.seller.id, people.security_id) == 900
        assert (await payments.trial_balance(session)).ledger_balanced
        timeline = [entry.stage for entry in await deals.timeline(session, params.deal_id)]
    assert timeline[0] == "created" and timeline[-1] == "closed"
    for stage in DealStage:
        if stage is not DealStage.CANCELLED:
            assert stage.value in timeline


async def test_a_blackout_window_holds_the_transfer_and_pushes_the_settlement_deadline_back(
    time_skipping_env: WorkflowEnvironment, worker: str, people: Parties, sessions: SessionFactory
) -> None:
    today = datetime.now(UTC).date()
    blackout = BlackoutWindow(start_date=today - timedelta(days=1), end_date=today + timedelta(days=4))
    params = await brokered_deal(sessions, people, blackout_windows=[blackout])
    handle = await start(time_skipping_env, worker, params)
    await to_funding(handle, params)
    await fund(sessions, handle, params, people.buyer.id)
    await at_stage(handle, DealStage.SETTLING)
    confirmation = SettlementConfirmation(actor_id=params.company_id)
    with pytest.raises(DealStageConflict) as refused:  # as the API answers the issuer: 409, with the window
        await update_deal_workflow(time_skipping_env.client, params.deal_id, "confirm_settlement", confirmation)
    assert refused.value.extra == {
        "start_date": blackout.start_date.isoformat(),
        "end_date": blackout.end_date.isoformat(),
    }
    assert "confirm the transfer after it" in refused.value.detail
    assert await available(sessions, people) == 900  # still reserved: nothing moved

    await time_skipping_env.sleep(timedelta(days=params.deadlines.settlement_days + 2))
    assert (await state(handle)).stage is DealStage.SETTLING  # the blackout's days did not count
    assert await update_and_finish(handle, "confirm_settlement", confirmation) is DealStage.CLOSED
    async with sessions() as session:
        assert await holdings.available_shares(session, people.buyer.id, people.security_id) == 100
    await save_if_recording(
        time_skipping_env.client, f"deal-{params.deal_id}", "DealExecution--settlement-after-blackout"
    )


async def test_rofr_lapse_counts_as_waiver_when_the_policy_says_so(
    time_skipping_env: WorkflowEnvironment, worker: str, people: Parties, sessions: SessionFactory
) -> None:
    params = await brokered_deal(sessions, people, rofr_days=30, rofr_lapse_is_waiver=True)
    handle = await start(time_skipping_env, worker, params)
    await at_stage(handle, DealStage.AWAITING_ISSUER)
    await sign_all(handle, params.deal_id)
    await time_skipping_env.sleep(timedelta(days=31))
    await at_stage(handle, DealStage.AWAITING_SIGNATURES)
    assert (await state(handle)).issuer_decision is IssuerDecision.WAIVE
    await save_if_recording(time_skipping_env.client, f"deal-{params.deal_id}", "DealExecution--rofr-lapse-waiver")


async def test_rofr_lapse_cancels_when_issuer_approval_is_required(
    time_skipping_env: WorkflowEnvironment, worker: str, people: Parties, sessions: SessionFactory
) -> None:
    params = await brokered_deal(sessions, people, rofr_days=30, issuer_approval_required=True)
    handle = await start(time_skipping_env, worker, params)
    await at_stage(handle, DealStage.AWAITING_ISSUER)
    await sign_all(handle, params.deal_id)
    await time_skipping_env.sleep(timedelta(days=31))
    assert await handle.result() is DealStage.CANCELLED
    assert await available(sessions, people) == 1_000


async def test_rofr_exercise_puts_the_company_in_the_buyers_place(
    time_skipping_env: WorkflowEnvironment,
    worker: str,
    people: Parties,
    sessions: SessionFactory,
    real_activities: DealActivities,
    api: httpx.AsyncClient,
) -> None:
    params = await brokered_deal(sessions, people, rofr_exercise_substitutes_buyer=True)
    handle = await start(time_skipping_env, worker, params)
    await through_issuer(handle, params, IssuerDecision.EXERCISE)
    await at_stage(handle, DealStage.AWAITING_SIGNATURES)
    assert (await state(handle)).buyer_id == params.company_id
    await sign_all(handle, params.deal_id)
    await at_stage(handle, DealStage.AWAITING_FUNDING)
    await fund(sessions, handle, params, params.company_id)
    await at_stage(handle, DealStage.SETTLING)
    await update_and_finish(handle, "confirm_settlement", SettlementConfirmation(actor_id=params.company_id))
    assert await handle.result() is DealStage.CLOSED
    async with sessions() as session:
        assert await holdings.available_shares(session, params.company_id, people.security_id) == 100
        assert await holdings.available_shares(session, people.buyer.id, people.security_id) == 0
        kinds = {d.kind for d in await documents.list_deal_documents(session, params.deal_id)}
    assert DocumentKind.JOINDER.value not in kinds  # the company joins nothing
    await save_if_recording(
        time_skipping_env.client, f"deal-{params.deal_id}", "DealExecution--rofr-exercise-substitutes"
    )

    # The replaced buyer is told once, even when the step runs again (a retry after its commit).
    again = DealRef(deal_id=params.deal_id, reason=str(people.buyer.id))
    await ActivityEnvironment(time_skipping_env.client).run(real_activities.notify_buyer_replaced, again)
    async with sessions() as session:
        replaced = await session.execute(
            text("SELECT count(*) FROM platform.outbox_event WHERE type = 'deals.buyer.replaced' AND key = :deal"),
            {"deal": str(params.deal_id)},
        )
        assert replaced.scalar_one() == 1

    async def told() -> list[str]:
        listed = await api.get("/v1/notifications", headers=people.buyer.headers)
        return [n["kind"] for n in listed.json()["items"]]

    await eventually(told, lambda kinds: "deal_buyer_replaced" in kinds, what="the replaced buyer told")


async def test_rofr_exercise_cancels_when_the_policy_does_not_substitute(
    time_skipping_env: WorkflowEnvironment, worker: str, people: Parties, sessions: SessionFactory
) -> None:
    params = await brokered_deal(sessions, people, rofr_exercise_substitutes_buyer=False)
    handle = await start(time_skipping_env, worker, params)
    await through_issuer(handle, params, IssuerDecision.EXERCISE)
    assert await handle.result() is DealStage.CANCELLED
    assert await available(sessions, people) == 1_000


async def test_issuer_rejection_cancels_and_releases_the_shares(
    time_skipping_env: WorkflowEnvironment, worker: str, people: Parties, sessions: SessionFactory
) -> None:
    params = await brokered_deal(sessions, people)
    handle = await start(time_skipping_env, worker, params)
    await through_issuer(handle, params, IssuerDecision.REJECT)
    assert await handle.result() is DealStage.CANCELLED
    assert await available(sessions, people) == 1_000
    async with sessions() as session:
        deal = await deals.get_deal(session, params.deal_id)
        statuses = {d.status for d in await documents.list_deal_documents(session, params.deal_id)}
    assert deal.stage == "cancelled" and "rejected" in (deal.cancel_reason or "")
    assert "awaiting_signatures" not in statuses


async def test_a_second_issuer_decision_is_refused_by_the_validator(
    time_skipping_env: WorkflowEnvironment, worker: str, people: Parties, sessions: SessionFactory
) -> None:
    params = await brokered_deal(sessions, people)
    handle = await start(time_skipping_env, worker, params)
    await at_stage(handle, DealStage.AWAITING_ISSUER)
    decision = IssuerDecisionInput(decision=IssuerDecision.APPROVE, actor_id=params.company_id)
    await handle.execute_update(DealExecutionWorkflow.decide, decision)
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(DealExecutionWorkflow.decide, decision)
    confirmation = SettlementConfirmation(actor_id=params.company_id)
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update("confirm_settlement", confirmation, result_type=DealState)


async def test_a_declined_signature_cancels_the_deal(
    time_skipping_env: WorkflowEnvironment, worker: str, people: Parties, sessions: SessionFactory
) -> None:
    params = await brokered_deal(sessions, people)
    handle = await start(time_skipping_env, worker, params)
    await through_issuer(handle, params, IssuerDecision.WAIVE)
    # The stage is set while its timeline entry is recorded; the documents to sign follow a moment later.
    pending = (
        await eventually(
            lambda: state(handle),
            lambda s: s.stage is DealStage.AWAITING_SIGNATURES and bool(s.pending_documents),
            what="documents awaiting signatures",
        )
    ).pending_documents
    await handle.signal(
        DealExecutionWorkflow.document_declined,
        DocumentDeclined(
            document_id=pending[0], deal_id=params.deal_id, signer_id=people.buyer.id, reason="changed my mind"
        ),
    )
    assert await handle.result() is DealStage.CANCELLED
    assert await available(sessions, people) == 1_000
    await save_if_recording(time_skipping_env.client, f"deal-{params.deal_id}", "DealExecution--signature-declined")


async def test_the_signature_deadline_cancels_after_reminders(
    time_skipping_env: WorkflowEnvironment, worker: str, people: Parties, sessions: SessionFactory
) -> None:
    params = await brokered_deal(sessions, people)
    handle = await start(time_skipping_env, worker, params)
    await through_issuer(handle, params, IssuerDecision.WAIVE)
    await at_stage(handle, DealStage.AWAITING_SIGNATURES)
    await time_skipping_env.sleep(timedelta(days=8))
    assert await handle.result() is DealStage.CANCELLED
    history = await handle.fetch_history()
    reminders = [
        e
        for e in history.events
        if "deals.send_reminders" in str(e.activity_task_scheduled_event_attributes.activity_type)
    ]
    assert len(reminders) >= 3  # every 2 days for 7 days
    async with sessions() as session:
        assert "signature deadline" in ((await deals.get_deal(session, params.deal_id)).cancel_reason or "")


async def test_funding_deadline_without_a_backup_bid_cancels_and_refunds_partial_funds(
    time_skipping_env: WorkflowEnvironment, worker: str, people: Parties, sessions: SessionFactory
) -> None:
    params = await brokered_deal(sessions, people, quantity=10, price="100")
    handle = await start(time_skipping_env, worker, params)
    await to_funding(handle, params)
    async with transaction(sessions) as session:
        instructions = await payments.create_funding_instructions(
            session, deal_id=params.deal_id, buyer_id=people.buyer.id, amount=Money(amount=Decimal(1000)), reference="t"
        )
        await payments.record_provider_payment(
            session,
            event_id=str(uuid.uuid4()),
            payment_id=instructions.payment_id,
            status="succeeded",
            amount=Money(amount=Decimal(400)),
        )
    assert await escrow(sessions, params.deal_id) == 400
    await time_skipping_env.sleep(timedelta(days=6))
    assert await handle.result() is DealStage.CANCELLED
    assert (await state(handle)).defaulted_buyers == [people.buyer.id]
    assert await escrow(sessions, params.deal_id) == 0
    assert await available(sessions, people) == 1_000
    await save_if_recording(time_skipping_env.client, f"deal-{params.deal_id}", "DealExecution--funding-deadline")


async def test_a_step_the_domain_refuses_cancels_the_deal_instead_of_retrying_for_ever(
    time_skipping_env: WorkflowEnvironment, worker: str, people: Parties, sessions: SessionFactory
) -> None:
    """Funding instructions the payments service refuses (the buyer already owes this deal another amount):
    the deal is cancelled with every compensation, and the workflow completes instead of failing."""
    params = await brokered_deal(sessions, people, quantity=10, price="100")
    handle = await start(time_skipping_env, worker, params)
    await through_issuer(handle, params, IssuerDecision.WAIVE)
    await at_stage(handle, DealStage.AWAITING_SIGNATURES)
    async with transaction(sessions) as session:
        other = await payments.create_funding_instructions(
            session, deal_id=params.deal_id, buyer_id=people.buyer.id, amount=Money(amount=Decimal(1)), reference="t"
        )
        await payments.record_provider_payment(
            session, event_id=str(uuid.uuid4()), payment_id=other.payment_id, status="succeeded", amount=other.amount
        )
    assert await escrow(sessions, params.deal_id) == 1
    await sign_all(handle, params.deal_id)
    assert await handle.result() is DealStage.CANCELLED
    reason = (await state(handle)).cancel_reason or ""
    assert reason.startswith("the deal cannot proceed: ") and "already expects 1" in reason
    assert await escrow(sessions, params.deal_id) == 0
    assert await available(sessions, people) == 1_000
    async with sessions() as session:
        assert (await deals.get_deal(session, params.deal_id)).stage == DealStage.CANCELLED.value
        assert (await payments.trial_balance(session)).ledger_balanced
    await save_if_recording(time_skipping_env.client, f"deal-{params.deal_id}", "DealExecution--refused-step-cancels")


@pytest.mark.parametrize(
    "stage", [DealStage.AWAITING_ISSUER, DealStage.AWAITING_SIGNATURES, DealStage.AWAITING_FUNDING, DealStage.SETTLING]
)
async def test_manual_cancel_at_each_stage_compensates(
    time_skipping_env: WorkflowEnvironment, worker: str, people: Parties, sessions: SessionFactory, stage: DealStage
) -> None:
    params = await brokered_deal(sessions, people, quantity=10, price="50")
    handle = await start(time_skipping_env, worker, params)
    if stage is not DealStage.AWAITING_ISSUER:
        await through_issuer(handle, params, IssuerDecision.WAIVE)
        await at_stage(handle, DealStage.AWAITING_SIGNATURES)
    if stage in (DealStage.AWAITING_FUNDING, DealStage.SETTLING):
        await sign_all(handle, params.deal_id)
        await at_stage(handle, DealStage.AWAITING_FUNDING)
    if stage is DealStage.SETTLING:
        await fund(sessions, handle, params, people.buyer.id)
    await at_stage(handle, stage)
    result = await update_and_finish(
        handle, "cancel", CancelInput(reason="deal manager stopped it", actor_id=uuid.uuid4())
    )
    assert result is DealStage.CANCELLED
    assert await escrow(sessions, params.deal_id) == 0
    assert await available(sessions, people) == 1_000
    async with sessions() as session:
        assert (await payments.trial_balance(session)).ledger_balanced
    with pytest.raises(RPCError):  # the workflow has finished: nothing left to cancel
        await handle.execute_update("cancel", CancelInput(reason="again", actor_id=uuid.uuid4()), result_type=DealState)
    await save_if_recording(
        time_skipping_env.client, f"deal-{params.deal_id}", f"DealExecution--cancel-at-{stage.value}"
    )


async def test_a_compliance_hold_pauses_the_deal_until_lifted(
    time_skipping_env: WorkflowEnvironment, worker: str, people: Parties, sessions: SessionFactory
) -> None:
    params = await brokered_deal(sessions, people)
    handle = await start(time_skipping_env, worker, params)
    await at_stage(handle, DealStage.AWAITING_ISSUER)
    hold = HoldInput(actor_id=uuid.uuid4(), reason="sanctions screening")
    await handle.signal(DealExecutionWorkflow.place_hold, hold)
    await handle.execute_update(
        DealExecutionWorkflow.decide, IssuerDecisionInput(decision=IssuerDecision.WAIVE, actor_id=params.company_id)
    )
    await sign_all(handle, params.deal_id)

    async def details() -> list[str]:
        async with sessions() as session:
            return [e.detail for e in await deals.timeline(session, params.deal_id)]

    await eventually(details, lambda d: any("on hold" in x for x in d), what="the deal paused at its next step")
    assert (await state(handle)).stage is DealStage.AWAITING_ISSUER  # no transfer documents while held
    await handle.signal(DealExecutionWorkflow.lift_hold, hold)
    await at_stage(handle, DealStage.AWAITING_SIGNATURES)
    await save_if_recording(time_skipping_env.client, f"deal-{params.deal_id}", "DealExecution--compliance-hold")


async def test_a_hold_stops_settlement_and_a_deadline_passing_on_hold_waits_for_the_lift(
    time_skipping_env: WorkflowEnvironment, worker: str, people: Parties, sessions: SessionFactory
) -> None:
    params = await brokered_deal(sessions, people)
    handle = await start(time_skipping_env, worker, params)
    await to_funding(handle, params)
    hold = HoldInput(actor_id=uuid.uuid4(), reason="source of funds review")
    await handle.signal(DealExecutionWorkflow.place_hold, hold)
    await eventually(lambda: state(handle), lambda s: s.on_hold, what="the hold placed")
    await time_skipping_env.sleep(timedelta(days=params.deadlines.funding_days + 1))
    held = await state(handle)
    assert held.stage is DealStage.AWAITING_FUNDING and held.defaulted_buyers == []  # no backup taken, no refund
    await fund(sessions, handle, params, people.buyer.id)  # the buyer's money arrives during the review
    await handle.signal(DealExecutionWorkflow.lift_hold, hold)
    await at_stage(handle, DealStage.SETTLING)  # funded before the lift: the deadline no longer applies

    await handle.signal(DealExecutionWorkflow.place_hold, hold)
    await eventually(lambda: state(handle), lambda s: s.on_hold, what="the hold placed again")
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            "confirm_settlement", SettlementConfirmation(actor_id=params.company_id), result_type=DealState
        )
    assert "on hold" in str(refused.value.cause)
    assert await escrow(sessions, params.deal_id) == params.price.amount * params.quantity  # nothing released
    await handle.signal(DealExecutionWorkflow.lift_hold, hold)
    await eventually(lambda: state(handle), lambda s: not s.on_hold, what="the hold lifted")
    closed = await update_and_finish(handle, "confirm_settlement", SettlementConfirmation(actor_id=params.company_id))
    assert closed is DealStage.CLOSED
    await save_if_recording(
        time_skipping_env.client, f"deal-{params.deal_id}", "DealExecution--hold-over-funding-deadline"
    )


async def test_an_issuer_decision_is_refused_once_the_deal_is_being_cancelled(
    time_skipping_env: WorkflowEnvironment, worker: str, people: Parties, sessions: SessionFactory
) -> None:
    params = await brokered_deal(sessions, people)
    handle = await start(time_skipping_env, worker, params)
    await at_stage(handle, DealStage.AWAITING_ISSUER)
    await handle.start_update(
        DealExecutionWorkflow.cancel,
        CancelInput(actor_id=uuid.uuid4(), reason="stop"),
        wait_for_stage=WorkflowUpdateStage.ACCEPTED,
    )
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(
            DealExecutionWorkflow.decide,
            IssuerDecisionInput(decision=IssuerDecision.APPROVE, actor_id=params.company_id),
        )
    assert await handle.result() is DealStage.CANCELLED


async def backup_closes_the_deal(
    handle: WorkflowHandle[DealExecutionWorkflow, DealStage],
    params: DealWorkflowInput,
    sessions: SessionFactory,
    people: Parties,
    backup_id: uuid.UUID,
) -> None:
    """The backup buyer signs a transfer notice of their own, the issuer decides on them, they sign and fund,
    the issuer confirms: the shares go to the backup, none to the defaulter."""
    await to_funding(handle, params)
    await fund(sessions, handle, params, backup_id)
    await at_stage(handle, DealStage.SETTLING)
    closed = await update_and_finish(handle, "confirm_settlement", SettlementConfirmation(actor_id=params.company_id))
    assert closed is DealStage.CLOSED
    async with sessions() as session:
        assert await holdings.available_shares(session, backup_id, people.security_id) == 10
        assert await holdings.available_shares(session, people.buyer.id, people.security_id) == 0


async def test_a_defaulting_buyer_is_replaced_by_the_best_resting_bid(
    time_skipping_env: WorkflowEnvironment,
    worker: str,
    people: Parties,
    sessions: SessionFactory,
    api: httpx.AsyncClient,
    token_for: TokenFor,
) -> None:
    backup = await make_verified_buyer(api, compliance_headers=people.compliance)
    bid = await place(api, backup.headers, order_body(people.security_id, "buy", 10, "60.00"))
    params = await brokered_deal(sessions, people, quantity=10, price="50")
    handle = await start(time_skipping_env, worker, params)
    await to_funding(handle, params)
    replaced = await backup_buyer_offered(time_skipping_env, handle, backup.id)  # the first buyer never pays
    assert replaced.defaulted_buyers == [people.buyer.id]
    # The issuer decides on the backup buyer: a notice of their own, no decision carried over.
    assert replaced.stage is DealStage.AWAITING_ISSUER and replaced.issuer_decision is None
    async with sessions() as session:
        notices = [
            d for d in await documents.list_deal_documents(session, params.deal_id) if d.kind == "stock_transfer_notice"
        ]
    assert sorted(n.status for n in notices) == ["awaiting_signatures", "voided"]
    live = next(n for n in notices if n.status != "voided")
    assert {s.user_id for s in live.signers} == {people.seller.id, backup.id}
    # The defaulter's voided notice names them and holds their signing trail: not the backup buyer's to read.
    voided = next(n for n in notices if n.status == "voided")
    for path in ("", "/content", "/events"):
        response = await api.get(f"/v1/documents/{voided.id}{path}", headers=backup.headers)
        assert response.status_code == 404, (path, response.text)
    listed = await api.get(f"/v1/deals/{params.deal_id}/documents", headers=backup.headers)
    assert listed.status_code == 200 and str(voided.id) not in {d["id"] for d in listed.json()}
    assert str(live.id) in {d["id"] for d in listed.json()}
    for_seller = await api.get(f"/v1/documents/{voided.id}", headers=people.seller.headers)
    assert for_seller.status_code == 200, for_seller.text  # a signer of it
    await backup_closes_the_deal(handle, params, sessions, people, backup.id)
    async with sessions() as session:
        deal = await deals.get_deal(session, params.deal_id)
        assert (await payments.trial_balance(session)).ledger_balanced
    assert deal.buyer_id == backup.id and str(people.buyer.id) in deal.defaulted_buyer_ids
    order = (await api.get(f"/v1/orders/{bid['id']}", headers=backup.headers)).json()
    assert order["status"] == "filled"
    await save_if_recording(
        time_skipping_env.client, f"deal-{params.deal_id}", "DealExecution--backup-buyer-issuer-decides"
    )


async def test_a_backup_bidder_no_longer_eligible_is_passed_over_for_the_next_bid(
    time_skipping_env: WorkflowEnvironment,
    worker: str,
    people: Parties,
    sessions: SessionFactory,
    api: httpx.AsyncClient,
) -> None:
    lapsed = await make_verified_buyer(api, compliance_headers=people.compliance)
    lapsed_bid = await place(api, lapsed.headers, order_body(people.security_id, "buy", 10, "70.00"))
    backup = await make_verified_buyer(api, compliance_headers=people.compliance)
    await place(api, backup.headers, order_body(people.security_id, "buy", 10, "60.00"))
    async with transaction(sessions) as session:  # the best bidder's accreditation lapsed while the bid rested
        await session.execute(
            text("UPDATE profiles.accreditation SET expires_at = now() - interval '1 day' WHERE user_id = :u"),
            {"u": lapsed.id},
        )
    params = await brokered_deal(sessions, people, quantity=10, price="50")
    handle = await start(time_skipping_env, worker, params)
    await to_funding(handle, params)
    await backup_buyer_offered(time_skipping_env, handle, backup.id)  # the first buyer never pays
    untouched = (await api.get(f"/v1/orders/{lapsed_bid['id']}", headers=lapsed.headers)).json()
    assert untouched["status"] == "open" and untouched["filled_quantity"] == 0, untouched
    await backup_closes_the_deal(handle, params, sessions, people, backup.id)


async def test_a_backup_bid_cancelled_while_it_is_being_taken_passes_to_the_next_bid(
    people: Parties,
    sessions: SessionFactory,
    api: httpx.AsyncClient,
    real_activities: DealActivities,
    temporal_client: Client,
) -> None:
    """The best bid is read, then cancelled before its row lock is taken: the next best bid is the backup
    (a refusal here would cancel the whole deal)."""
    best = await make_verified_buyer(api, compliance_headers=people.compliance)
    best_bid = await place(api, best.headers, order_body(people.security_id, "buy", 10, "70.00"))
    backup = await make_verified_buyer(api, compliance_headers=people.compliance)
    await place(api, backup.headers, order_body(people.security_id, "buy", 10, "60.00"))
    params = await brokered_deal(sessions, people, quantity=10, price="50")
    ref = DealRef(deal_id=params.deal_id, reason=f"{people.buyer.id},{people.seller.id}")

    async with sessions() as canceller, canceller.begin():
        await canceller.execute(  # the bidder's cancel holds the order row...
            text("SELECT id FROM marketplace.order WHERE id = :o FOR UPDATE"), {"o": best_bid["id"]}
        )
        finding = asyncio.ensure_future(
            ActivityEnvironment(temporal_client).run(real_activities.find_backup_buyer, ref)
        )
        await eventually(
            lambda: waiting_for_a_lock(sessions, "%order%FOR UPDATE%"), what="the backup search to wait for the order"
        )
        await canceller.execute(  # ...and commits while the backup search waits for it
            text("UPDATE marketplace.order SET status = 'cancelled' WHERE id = :o"), {"o": best_bid["id"]}
        )
    found = await finding
    assert found is not None and found.buyer_id == backup.id


async def test_a_defaulting_matched_buyer_gives_back_the_fill_and_their_bid_is_withdrawn(
    time_skipping_env: WorkflowEnvironment,
    worker: str,
    people: Parties,
    sessions: SessionFactory,
    api: httpx.AsyncClient,
) -> None:
    sell = await place_order(sessions, people.seller.id, people, Side.SELL, "50")
    matched = await place_order(sessions, people.buyer.id, people, Side.BUY, "50")
    assert matched.order.status is OrderStatus.FILLED and len(matched.deals) == 1
    params = matched.deals[0].model_copy(update={"index_search_attributes": False})
    backup = await make_verified_buyer(api, compliance_headers=people.compliance)
    backup_bid = (await place_order(sessions, backup.id, people, Side.BUY, "55")).order
    handle = await start(time_skipping_env, worker, params)
    await to_funding(handle, params)
    await time_skipping_env.sleep(timedelta(days=6))  # the matched buyer never pays
    await eventually(lambda: state(handle), lambda s: s.buyer_id == backup.id, what="backup buyer")

    async with sessions() as session:
        defaulted = await marketplace.get_order(session, matched.order.id)
        taken = await marketplace.get_order(session, backup_bid.id)
    assert defaulted.status is OrderStatus.CANCELLED and defaulted.filled_quantity == 0
    assert defaulted.status_reason and "defaulted" in defaulted.status_reason
    assert taken.status is OrderStatus.FILLED and taken.filled_quantity == 10
    async with transaction(sessions) as session:  # the step retried: the same bid, nothing given back twice
        again = await marketplace.backup_taken(
            session, deal_id=params.deal_id, buyer_id=people.buyer.id, defaulted=set()
        )
        assert again is not None and again.order_id == backup_bid.id
        reason = "retried"
        assert (
            await marketplace.drop_defaulted_buyer(
                session, deal_id=params.deal_id, buyer_id=people.buyer.id, reason=reason
            )
            == []
        )
        assert (await marketplace.get_order(session, matched.order.id)).filled_quantity == 0

    await backup_closes_the_deal(handle, params, sessions, people, backup.id)
    async with sessions() as session:
        assert (await marketplace.get_order(session, sell.order.id)).status is OrderStatus.FILLED
        assert (await marketplace.get_order(session, matched.order.id)).filled_quantity == 0
        assert (await payments.trial_balance(session)).ledger_balanced


async def test_a_signature_stage_lists_its_documents_from_its_first_moment(
    time_skipping_env: WorkflowEnvironment, people: Parties, sessions: SessionFactory, settings: Settings
) -> None:
    """The state query never shows a signature stage with nothing to sign: each stage is held open at
    its first activity (recording it) while the test asks the workflow what is pending."""
    entered = {DealStage.AWAITING_ISSUER: asyncio.Event(), DealStage.AWAITING_SIGNATURES: asyncio.Event()}
    held = dict(entered)
    release = asyncio.Event()
    real = DealActivities(sessions, LocalObjectStore(settings.state_dir / "objects"))

    @activity.defn(name="deals.record_stage")
    async def record_stage(change: StageChange) -> bool:
        first = held.pop(change.stage, None)  # only the stage's own first record, not later timeline entries
        if first is not None:
            first.set()
            await asyncio.wait_for(release.wait(), timeout=60)  # bounded: a failed test must not hang the worker
            release.clear()
        return await real.record_stage(change)

    queue = f"deals-held-{uuid.uuid4()}"
    methods = [m for m in activity_methods(real) if m.__name__ != "record_stage"]
    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[DealExecutionWorkflow],
        activities=[*methods, record_stage],
    ):
        params = await brokered_deal(sessions, people, quantity=10, price="12.50")
        handle = await start(time_skipping_env, queue, params)
        for stage, documents_expected in ((DealStage.AWAITING_ISSUER, 1), (DealStage.AWAITING_SIGNATURES, 2)):
            await entered[stage].wait()
            current = await state(handle)
            assert current.stage is stage
            assert len(current.pending_documents) >= documents_expected, current
            release.set()
            if stage is DealStage.AWAITING_ISSUER:
                await handle.execute_update(
                    DealExecutionWorkflow.decide,
                    IssuerDecisionInput(decision=IssuerDecision.WAIVE, actor_id=params.company_id),
                )
                await sign_all(handle, params.deal_id)
        cancelled = await update_and_finish(
            handle, "cancel", CancelInput(actor_id=params.company_id, reason="test done")
        )
        assert cancelled is DealStage.CANCELLED
