"""OrderLifecycle on the time-skipping server: GTD expiry releases the reservation; cancel/amend Updates.

Set PAP_RECORD_HISTORIES=1 to (re)write `tests/histories/OrderLifecycle--*.json` from these runs.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.marketplace import MarketplaceActivities
from models.base import Money, utcnow
from models.marketplace import (
    AmendOrderInput,
    CancelOrderInput,
    OrderCreate,
    OrderFilled,
    OrderRead,
    OrderRef,
    OrderStatus,
    OrderWorkflowInput,
    Side,
    TimeInForce,
)
from pap.db import SessionFactory, transaction
from pap.settings import Settings
from services import marketplace
from tests.market_support import new_security, verified_lot
from tests.marketplace_support import reserved_outstanding
from workflows.orders import OrderLifecycle

HISTORIES = Path(__file__).parent / "histories"


async def sell_order(sessions: SessionFactory, *, gtd_days: int | None = None) -> OrderRead:
    _, security_id = await new_security(sessions)
    seller = uuid.uuid4()
    await verified_lot(sessions, seller, security_id, 100)
    body = OrderCreate(
        security_id=security_id,
        side=Side.SELL,
        quantity=40,
        limit_price=Money(amount=Decimal("12.5"), currency="USD"),
        time_in_force=TimeInForce.GTD if gtd_days else TimeInForce.GTC,
        expires_at=utcnow() + timedelta(days=gtd_days) if gtd_days else None,
    )
    async with transaction(sessions) as session:
        outcome = await marketplace.place_order(session, seller, body)
    return outcome.order


def workflow_input(order: OrderRead) -> OrderWorkflowInput:
    return OrderWorkflowInput(
        order_id=order.id,
        user_id=order.user_id,
        security_id=order.security_id,
        side=order.side,
        status=order.status,
        expires_at=order.expires_at,
        index=False,  # the time-skipping server has no custom search attributes
    )


async def save_history(client: Client, workflow_id: str, path: str) -> None:
    if os.environ.get("PAP_RECORD_HISTORIES"):
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        (HISTORIES / f"OrderLifecycle--{path}.json").write_text(history.to_json())


@pytest.fixture
async def worker_for(time_skipping_env: WorkflowEnvironment, sessions: SessionFactory, settings: Settings) -> Worker:
    activities = MarketplaceActivities(sessions, settings)
    return Worker(
        time_skipping_env.client,
        task_queue=f"orders-{uuid.uuid4()}",
        workflows=[OrderLifecycle],
        activities=[activities.cancel_order, activities.expire_order, activities.amend_order, activities.refresh_order],
    )


async def test_gtd_order_expires_at_its_date_and_releases_its_shares(
    time_skipping_env: WorkflowEnvironment, worker_for: Worker, sessions: SessionFactory
) -> None:
    order = await sell_order(sessions, gtd_days=30)
    assert await reserved_outstanding(sessions, order.user_id, order.security_id) == 40
    client = time_skipping_env.client
    async with worker_for:
        result = await client.execute_workflow(
            OrderLifecycle.run, workflow_input(order), id=f"order-{order.id}", task_queue=worker_for.task_queue
        )
    assert result == OrderStatus.EXPIRED
    async with transaction(sessions) as session:
        assert (await marketplace.get_order(session, order.id)).status == OrderStatus.EXPIRED
    assert await reserved_outstanding(sessions, order.user_id, order.security_id) == 0
    await save_history(client, f"order-{order.id}", "gtd-expiry")


async def test_cancel_and_amend_updates_apply_in_the_database_and_validators_refuse_others(
    time_skipping_env: WorkflowEnvironment, worker_for: Worker, sessions: SessionFactory
) -> None:
    order = await sell_order(sessions)
    client = time_skipping_env.client
    async with worker_for:
        handle = await client.start_workflow(
            OrderLifecycle.run, workflow_input(order), id=f"order-{order.id}", task_queue=worker_for.task_queue
        )
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                "cancel", CancelOrderInput(order_id=order.id, user_id=uuid.uuid4()), result_type=OrderRead
            )
        assert isinstance(refused.value.cause, ApplicationError) and refused.value.cause.type == "order-not-found"
        amended = await handle.execute_update(
            "amend", AmendOrderInput(order_id=order.id, user_id=order.user_id, quantity=30), result_type=OrderRead
        )
        assert amended.quantity == 30
        assert await reserved_outstanding(sessions, order.user_id, order.security_id) == 30
        cancelled = await handle.execute_update(
            "cancel", CancelOrderInput(order_id=order.id, user_id=order.user_id), result_type=OrderRead
        )
        assert cancelled.status == OrderStatus.CANCELLED
        assert await handle.result() == OrderStatus.CANCELLED
        with pytest.raises((RPCError, WorkflowUpdateFailedError)):  # the workflow has completed
            await handle.execute_update(
                "amend", AmendOrderInput(order_id=order.id, user_id=order.user_id), result_type=OrderRead
            )
    assert await reserved_outstanding(sessions, order.user_id, order.security_id) == 0
    await save_history(client, f"order-{order.id}", "amend-cancel")


async def test_a_stale_refresh_never_brings_a_cancelled_order_back_to_life(
    time_skipping_env: WorkflowEnvironment, sessions: SessionFactory, settings: Settings
) -> None:
    """A fill's refresh reads the order, a cancel commits and applies, then the older read arrives."""
    order = await sell_order(sessions)
    real = MarketplaceActivities(sessions, settings)
    refresh_started, release_refresh = asyncio.Event(), asyncio.Event()

    @activity.defn(name="marketplace.refresh_order")
    async def refresh_order(params: OrderRef) -> OrderRead:
        stale = await real.refresh_order(params)  # read while the order is still open
        refresh_started.set()
        await release_refresh.wait()
        return stale

    client = time_skipping_env.client
    async with Worker(
        client,
        task_queue=f"orders-{uuid.uuid4()}",
        workflows=[OrderLifecycle],
        activities=[real.cancel_order, real.expire_order, real.amend_order, refresh_order],
    ) as worker:
        handle = await client.start_workflow(
            OrderLifecycle.run, workflow_input(order), id=f"order-{order.id}", task_queue=worker.task_queue
        )
        await handle.signal("order_filled", OrderFilled(order_id=order.id, trade_id=uuid.uuid4(), quantity=0))
        await refresh_started.wait()
        cancelled = await handle.execute_update(
            "cancel", CancelOrderInput(order_id=order.id, user_id=order.user_id), result_type=OrderRead
        )
        assert cancelled.status == OrderStatus.CANCELLED
        release_refresh.set()
        assert await asyncio.wait_for(handle.result(), 30) == OrderStatus.CANCELLED
    await save_history(client, f"order-{order.id}", "stale-refresh-after-cancel")
