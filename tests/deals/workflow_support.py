"""Driving DealExecution in tests: start it, read its state, sign, fund, decide, and wait for stages."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

from temporalio.client import WorkflowHandle, WorkflowUpdateStage
from temporalio.testing import WorkflowEnvironment

from models.base import Money
from models.deals import DealStage, DealState, DealWorkflowInput, IssuerDecision, IssuerDecisionInput
from models.documents import DocumentKind, DocumentSigned
from models.marketplace import OrderCreate, Side
from models.payments import PaymentReceived
from pap.db import SessionFactory, transaction
from services import holdings, marketplace, payments
from services.marketplace.orders import OrderOutcome
from tests.deal_support import Parties
from tests.support import eventually
from workflows.deals import DealExecutionWorkflow


async def start(
    env: WorkflowEnvironment, queue: str, params: DealWorkflowInput
) -> WorkflowHandle[DealExecutionWorkflow, DealStage]:
    return await env.client.start_workflow(
        DealExecutionWorkflow.run, params, id=f"deal-{params.deal_id}", task_queue=queue
    )


async def state(handle: WorkflowHandle[DealExecutionWorkflow, DealStage]) -> DealState:
    return await handle.query(DealExecutionWorkflow.state)


async def at_stage(handle: WorkflowHandle[DealExecutionWorkflow, DealStage], stage: DealStage) -> DealState:
    return await eventually(lambda: state(handle), lambda s: s.stage is stage, what=f"stage {stage.value}")


async def sign_all(handle: WorkflowHandle[DealExecutionWorkflow, DealStage], deal_id: uuid.UUID) -> None:
    current = await eventually(lambda: state(handle), lambda s: bool(s.pending_documents), what="documents to sign")
    for document_id in current.pending_documents:
        await handle.signal(
            DealExecutionWorkflow.document_signed,
            DocumentSigned(
                document_id=document_id, deal_id=deal_id, kind=DocumentKind.JOINDER, signer_id=deal_id, completed=True
            ),
        )


async def fund(
    sessions: SessionFactory,
    handle: WorkflowHandle[DealExecutionWorkflow, DealStage],
    params: DealWorkflowInput,
    payer: uuid.UUID,
) -> None:
    """Pay the escrow through the payments service (as the webhook does), then signal like the API."""
    total = Money(amount=params.price.amount * params.quantity, currency="USD")
    async with transaction(sessions) as session:
        instructions = await payments.create_funding_instructions(
            session, deal_id=params.deal_id, buyer_id=payer, amount=total, reference="test"
        )
        await payments.record_provider_payment(
            session, event_id=str(uuid.uuid4()), payment_id=instructions.payment_id, status="succeeded", amount=total
        )
    await handle.signal(
        DealExecutionWorkflow.payment_received,
        PaymentReceived(payment_id=instructions.payment_id, deal_id=params.deal_id, amount=total, funded=True),
    )


async def update_and_finish(
    handle: WorkflowHandle[DealExecutionWorkflow, DealStage], name: str, argument: object
) -> DealStage:
    """Send a long-running Update (settle, cancel) and wait for the workflow's end.

    The time-skipping server loses the result of an Update that outlives many
    workflow tasks, so tests wait for acceptance and then for the workflow.
    """
    await handle.start_update(name, argument, wait_for_stage=WorkflowUpdateStage.ACCEPTED, result_type=DealState)
    return await handle.result()


async def available(sessions: SessionFactory, p: Parties) -> int:
    async with sessions() as session:
        return await holdings.available_shares(session, p.seller.id, p.security_id)


async def escrow(sessions: SessionFactory, deal_id: uuid.UUID) -> Decimal:
    async with sessions() as session:
        return (await payments.escrow_balance(session, deal_id)).amount


async def through_issuer(
    handle: WorkflowHandle[DealExecutionWorkflow, DealStage], params: DealWorkflowInput, decision: IssuerDecision
) -> None:
    await at_stage(handle, DealStage.AWAITING_ISSUER)
    await handle.execute_update(
        DealExecutionWorkflow.decide, IssuerDecisionInput(decision=decision, actor_id=params.company_id)
    )
    await sign_all(handle, params.deal_id)


async def to_funding(handle: WorkflowHandle[DealExecutionWorkflow, DealStage], params: DealWorkflowInput) -> None:
    """The issuer waives and every document is signed: the deal awaits the buyer's money."""
    await through_issuer(handle, params, IssuerDecision.WAIVE)
    await at_stage(handle, DealStage.AWAITING_SIGNATURES)
    await sign_all(handle, params.deal_id)
    await at_stage(handle, DealStage.AWAITING_FUNDING)


async def place_order(
    sessions: SessionFactory, user_id: uuid.UUID, p: Parties, side: Side, price: str, quantity: int = 10
) -> OrderOutcome:
    """An order placed through the marketplace service (no API, no order workflow)."""
    body = OrderCreate(
        security_id=p.security_id, side=side, quantity=quantity, limit_price=Money(amount=Decimal(price))
    )
    async with transaction(sessions) as session:
        return await marketplace.place_order(session, user_id, body)


async def backup_buyer_offered(
    env: WorkflowEnvironment, handle: WorkflowHandle[DealExecutionWorkflow, DealStage], backup_id: uuid.UUID
) -> DealState:
    """Let the funding deadline pass unpaid: the trade goes to `backup_id`, whose documents then await signatures."""
    await env.sleep(timedelta(days=6))
    return await eventually(
        lambda: state(handle), lambda s: s.buyer_id == backup_id and bool(s.pending_documents), what="backup buyer"
    )
