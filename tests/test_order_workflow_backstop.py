"""An order whose workflow start was lost (the API died right after commit) still gets its workflow.

The order is placed through the service, as the API does, but nobody starts its
workflow: only the `order-workflows` consumer, fed by the outbox, can start it.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from events.envelope import CloudEvent
from models.base import Money
from models.marketplace import OrderCreate, OrderRead, Side
from pap.db import SessionFactory, transaction
from pap.settings import Settings
from services import marketplace
from temporal.ids import order_workflow_id
from tests.market_support import new_security, verified_lot
from tests.support import eventually
from workers.order_workflows import ORDER_CREATED, OrderWorkflowStarter


async def _place_without_workflow(sessions: SessionFactory) -> OrderRead:
    _, security_id = await new_security(sessions)
    seller = uuid.uuid4()
    await verified_lot(sessions, seller, security_id, 100)
    body = OrderCreate(security_id=security_id, side=Side.SELL, quantity=10, limit_price=Money(amount=Decimal("12.5")))
    async with transaction(sessions) as session:
        return (await marketplace.place_order(session, seller, body)).order


async def _status(client: Client, order_id: uuid.UUID) -> WorkflowExecutionStatus | None:
    try:
        return (await client.get_workflow_handle(order_workflow_id(order_id)).describe()).status
    except RPCError:
        return None


async def test_the_outbox_starts_the_workflow_of_an_order_whose_start_was_lost(
    platform: object, sessions: SessionFactory, temporal_client: Client
) -> None:
    order = await _place_without_workflow(sessions)
    status = await eventually(
        lambda: _status(temporal_client, order.id),
        lambda s: s is WorkflowExecutionStatus.RUNNING,
        timeout=30,
        what="the order's workflow started by the backstop",
    )
    assert status is WorkflowExecutionStatus.RUNNING


async def test_a_finished_order_is_never_started_again(
    platform: object, sessions: SessionFactory, temporal_client: Client, settings: Settings
) -> None:
    order = await _place_without_workflow(sessions)
    await eventually(
        lambda: _status(temporal_client, order.id),
        lambda s: s is WorkflowExecutionStatus.RUNNING,
        timeout=30,
        what="the order's workflow",
    )
    handle = temporal_client.get_workflow_handle(order_workflow_id(order.id))
    await handle.terminate(reason="test: the run has ended")
    event = CloudEvent(source="/test", type=ORDER_CREATED, subject=str(order.id), data={"order_id": str(order.id)})
    starter = OrderWorkflowStarter(temporal_client, settings.task_queue)
    async with transaction(sessions) as session:
        await starter(session, event)  # a redelivered event: the order is still live in the database
    assert await _status(temporal_client, order.id) is WorkflowExecutionStatus.TERMINATED
