"""The deal backstops: what the API does right after a commit still happens when it died in between.

A deal row is created through the service, as the API does, but nobody starts its
workflow: the `deal-workflows` handler, fed `deals.created`, does. A signature or a
payment whose signal was lost reaches the workflow through the `deal-signals`
handler. The test stack delays both consumers by a day (other tests own their
deals' workflows), so these tests hand the events to the handlers themselves.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError
from temporalio.worker import Worker

from events.envelope import CloudEvent
from models.deals import DealStage, StageChange
from models.documents import DocumentKind, DocumentSigned
from models.payments import PaymentReceived
from pap.db import SessionFactory, transaction
from pap.settings import Settings
from services import deals
from temporal.ids import deal_workflow_id
from temporal.starters import start_deal
from tests.deal_support import Parties, TokenFor, brokered_deal, parties
from tests.support import eventually
from workers.deal_signals import DealSignalForwarder
from workers.deal_workflows import DEAL_CREATED, DealWorkflowStarter

pytestmark = pytest.mark.usefixtures("platform")


@pytest.fixture(scope="module")
async def people(api: httpx.AsyncClient, sessions: SessionFactory, token_for: TokenFor) -> Parties:
    return await parties(api, sessions, token_for)


def created(deal_id: uuid.UUID) -> CloudEvent:
    return CloudEvent(source="/test", type=DEAL_CREATED, subject=str(deal_id), data={"deal_id": str(deal_id)})


async def deliver(sessions: SessionFactory, starter: DealWorkflowStarter, deal_id: uuid.UUID) -> None:
    async with transaction(sessions) as session:
        await starter(session, created(deal_id))


async def status(client: Client, deal_id: uuid.UUID) -> WorkflowExecutionStatus | None:
    try:
        return (await client.get_workflow_handle(deal_workflow_id(deal_id)).describe()).status
    except RPCError:
        return None


@pytest.fixture
def starter(temporal_client: Client, settings: Settings) -> DealWorkflowStarter:
    return DealWorkflowStarter(temporal_client, settings.task_queue)


async def test_a_deal_left_without_its_workflow_gets_one_and_a_redelivery_keeps_it(
    sessions: SessionFactory, people: Parties, temporal_client: Client, starter: DealWorkflowStarter
) -> None:
    deal_id = (await brokered_deal(sessions, people, quantity=1)).deal_id
    assert await status(temporal_client, deal_id) is None
    await deliver(sessions, starter, deal_id)
    handle = temporal_client.get_workflow_handle(deal_workflow_id(deal_id))
    first = await handle.describe()
    assert first.status is WorkflowExecutionStatus.RUNNING
    await deliver(sessions, starter, deal_id)  # the event again: the running workflow is kept, not replaced
    assert (await handle.describe()).run_id == first.run_id
    await handle.terminate(reason="test: done")


async def test_an_ended_deal_workflow_is_never_started_again(
    sessions: SessionFactory,
    people: Parties,
    temporal_client: Client,
    starter: DealWorkflowStarter,
    settings: Settings,
) -> None:
    params = await brokered_deal(sessions, people, quantity=1)
    await deliver(sessions, starter, params.deal_id)
    handle = temporal_client.get_workflow_handle(deal_workflow_id(params.deal_id))
    await handle.terminate(reason="test: the run has ended")
    with pytest.raises(WorkflowAlreadyStartedError):
        await start_deal(temporal_client, params, settings.task_queue)
    await deliver(sessions, starter, params.deal_id)  # a redelivered event after the end
    assert await status(temporal_client, params.deal_id) is WorkflowExecutionStatus.TERMINATED


async def test_a_deal_past_created_is_left_alone(
    sessions: SessionFactory, people: Parties, temporal_client: Client, starter: DealWorkflowStarter
) -> None:
    deal_id = (await brokered_deal(sessions, people, quantity=1)).deal_id
    await move(sessions, deal_id, DealStage.PARTICIPANTS_CONFIRMED)
    await deliver(sessions, starter, deal_id)
    assert await status(temporal_client, deal_id) is None


@workflow.defn(sandboxed=False)
class DealSignalRecorder:
    """Stands in for DealExecution (same workflow id): records the signals it hears."""

    def __init__(self) -> None:
        self.heard: list[str] = []

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal(name="document_signed")
    def document_signed(self, _: DocumentSigned) -> None:
        self.heard.append("document_signed")

    @workflow.signal(name="payment_received")
    def payment_received(self, _: PaymentReceived) -> None:
        self.heard.append("payment_received")

    @workflow.query(name="heard")
    def signals(self) -> list[str]:
        return self.heard


def _event(type: str, **data: object) -> CloudEvent:
    return CloudEvent(source="/test", type=type, data={key: str(value) for key, value in data.items()})


async def test_lost_signals_reach_a_live_deal_and_an_ended_deal_gets_none(
    sessions: SessionFactory, people: Parties, settings: Settings, temporal_client: Client
) -> None:
    deal_id = (await brokered_deal(sessions, people, quantity=1)).deal_id
    forwarder = DealSignalForwarder(temporal_client)
    signed = _event("documents.document.signed", deal_id=deal_id, document_id=uuid.uuid4(), kind="joinder")
    funded = CloudEvent(
        source="/test",
        type="payments.escrow.funded",
        data={"deal_id": str(deal_id), "payment_id": str(uuid.uuid4()), "amount": {"amount": "1", "currency": "USD"}},
    )
    queue = f"deal-signals-probe-{uuid.uuid4()}"
    plain = await Client.connect(
        settings.require("temporal_address"),
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )
    async with Worker(plain, task_queue=queue, workflows=[DealSignalRecorder]):
        handle = await plain.start_workflow(DealSignalRecorder.run, id=deal_workflow_id(deal_id), task_queue=queue)
        try:
            async with transaction(sessions) as session:
                await forwarder(session, signed)
            await eventually(lambda: handle.query(DealSignalRecorder.signals), lambda h: h == ["document_signed"])
            await move(sessions, deal_id, DealStage.CANCELLED)
            async with transaction(sessions) as session:
                await forwarder(session, funded)  # the deal has ended: nothing to tell its workflow
            await handle.signal(
                DealSignalRecorder.document_signed,
                DocumentSigned(  # a marker after it
                    document_id=uuid.uuid4(),
                    deal_id=deal_id,
                    kind=DocumentKind.JOINDER,
                    signer_id=deal_id,
                    completed=True,
                ),
            )
            heard = await eventually(lambda: handle.query(DealSignalRecorder.signals), lambda h: len(h) >= 2)
            assert heard == ["document_signed", "document_signed"]
        finally:
            await handle.terminate(reason="test: done")


async def move(sessions: SessionFactory, deal_id: uuid.UUID, stage: DealStage) -> None:
    change = StageChange(
        deal_id=deal_id, event_key=f"test:{uuid.uuid4()}", stage=stage, actor="test", detail="moved by the test"
    )
    async with transaction(sessions) as session:
        assert await deals.record_stage(session, change)
