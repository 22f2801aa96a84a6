"""Orders whose workflow start or change signal was lost (a process died right after commit) catch up.

The order is placed or changed through the service, as the API does, but nobody
starts or signals its workflow: only the `order-workflows` backstop, fed by the
outbox, can. The test stack delays the backstops by a day (so they never race the
tests), so these tests hand the event to the backstop's handler as its consumer would.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import update
from sqlmodel import col
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from events.envelope import CloudEvent
from models.base import Money
from models.marketplace import CancelOrderInput, Order, OrderCreate, OrderRead, Side
from pap.db import SessionFactory, transaction
from pap.settings import Settings
from services import marketplace
from services.marketplace.common import ORDER_CANCELLED, ORDER_CREATED
from temporal.ids import order_workflow_id
from temporal.start_hints import mark_started, was_started
from tests.market_support import new_security, verified_lot
from tests.marketplace_support import order_body, place, seller_with_shares
from workers.order_workflows import OrderWorkflowBackstop


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


def _event(order_id: uuid.UUID, type_: str = ORDER_CREATED) -> CloudEvent:
    return CloudEvent(source="/test", type=type_, subject=str(order_id), data={"order_id": str(order_id)})


@pytest.fixture
def starter(temporal_client: Client, redis: Redis, settings: Settings) -> OrderWorkflowBackstop:
    return OrderWorkflowBackstop(temporal_client, redis, settings.task_queue)


async def _backstop(
    sessions: SessionFactory, starter: OrderWorkflowBackstop, order_id: uuid.UUID, type_: str = ORDER_CREATED
) -> None:
    async with transaction(sessions) as session:
        await starter(session, _event(order_id, type_))


async def test_the_backstop_starts_the_workflow_of_an_order_whose_start_was_lost(
    platform: object, sessions: SessionFactory, temporal_client: Client, starter: OrderWorkflowBackstop
) -> None:
    order = await _place_without_workflow(sessions)
    assert await _status(temporal_client, order.id) is None
    await _backstop(sessions, starter, order.id)
    assert await _status(temporal_client, order.id) is WorkflowExecutionStatus.RUNNING


async def test_the_api_notes_its_start_and_the_backstop_then_leaves_the_order_alone(
    api: httpx.AsyncClient,
    token_for: Callable[..., dict[str, str]],
    sessions: SessionFactory,
    temporal_client: Client,
    redis: Redis,
    starter: OrderWorkflowBackstop,
) -> None:
    _, security_id = await new_security(sessions)
    _, seller = await seller_with_shares(api, token_for, security_id, 100)
    placed = await place(api, seller, order_body(security_id, "sell", 10, "12.50"))
    assert await was_started(redis, placed["workflow_id"])

    # A note without a workflow (only possible here) shows the backstop trusts the note: no start request.
    order = await _place_without_workflow(sessions)
    await mark_started(redis, order_workflow_id(order.id))
    await _backstop(sessions, starter, order.id)
    assert await _status(temporal_client, order.id) is None


async def test_a_completed_order_workflow_is_never_started_again(
    platform: object, sessions: SessionFactory, temporal_client: Client, starter: OrderWorkflowBackstop
) -> None:
    order = await _place_without_workflow(sessions)
    await _backstop(sessions, starter, order.id)
    handle = temporal_client.get_workflow_handle(order_workflow_id(order.id))
    await handle.execute_update(
        "cancel", CancelOrderInput(order_id=order.id, user_id=order.user_id), result_type=OrderRead
    )
    await handle.result()
    async with transaction(sessions) as session:  # only a bug could reopen it: the backstop still starts nothing
        await session.execute(update(Order).where(col(Order.id) == order.id).values(status="open"))
    await _backstop(sessions, starter, order.id)
    assert await _status(temporal_client, order.id) is WorkflowExecutionStatus.COMPLETED


async def test_a_terminated_order_workflow_is_started_again_from_the_live_order(
    platform: object, sessions: SessionFactory, temporal_client: Client, starter: OrderWorkflowBackstop
) -> None:
    order = await _place_without_workflow(sessions)
    await _backstop(sessions, starter, order.id)
    handle = temporal_client.get_workflow_handle(order_workflow_id(order.id))
    first_run = (await handle.describe()).run_id
    await handle.terminate(reason="test: ops ended the run; the order is still live")
    await _backstop(sessions, starter, order.id)  # a redelivered event repairs it
    description = await handle.describe()
    assert description.status is WorkflowExecutionStatus.RUNNING and description.run_id != first_run


async def test_a_change_made_outside_the_workflow_reaches_it_through_the_backstop(
    platform: object, sessions: SessionFactory, temporal_client: Client, starter: OrderWorkflowBackstop
) -> None:
    order = await _place_without_workflow(sessions)
    await _backstop(sessions, starter, order.id)
    async with transaction(sessions) as session:  # cancelled by a service whose signal never went out
        await marketplace.cancel_order(session, order.id, order.user_id, "test: withdrawn elsewhere")
    handle = temporal_client.get_workflow_handle(order_workflow_id(order.id))
    assert await handle.query("status") == "open"

    await _backstop(sessions, starter, order.id, ORDER_CANCELLED)
    assert await handle.result() == "cancelled"
    await _backstop(sessions, starter, order.id, ORDER_CANCELLED)  # redelivered: the finished workflow needs nothing


async def test_a_change_for_an_order_without_a_workflow_is_left_to_its_start(
    platform: object, sessions: SessionFactory, temporal_client: Client, starter: OrderWorkflowBackstop
) -> None:
    order = await _place_without_workflow(sessions)
    await _backstop(sessions, starter, order.id, ORDER_CANCELLED)
    assert await _status(temporal_client, order.id) is None
