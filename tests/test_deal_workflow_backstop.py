"""A deal whose workflow start was lost (the API died right after commit) still gets its workflow.

The deal row is created through the service, as the API does, but nobody starts its
workflow; the `deal-workflows` consumer's handler, fed `deals.created`, does. The
test stack sets the consumer's delay to a day (other tests own their deals'
workflows), so these tests hand the event to the handler themselves.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from events.envelope import CloudEvent
from models.deals import DealStage, StageChange
from pap.db import SessionFactory, transaction
from pap.settings import Settings
from services import deals
from temporal.ids import deal_workflow_id
from temporal.starters import start_deal
from tests.deal_support import Parties, TokenFor, brokered_deal, parties
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
    change = StageChange(
        deal_id=deal_id,
        event_key=f"test:{uuid.uuid4()}",
        stage=DealStage.PARTICIPANTS_CONFIRMED,
        actor="test",
        detail="moved by the test",
    )
    async with transaction(sessions) as session:
        assert await deals.record_stage(session, change)
    await deliver(sessions, starter, deal_id)
    assert await status(temporal_client, deal_id) is None
