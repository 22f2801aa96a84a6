"""What happens once an order change has committed: deals start, filled resting orders hear of it."""

from __future__ import annotations

import asyncio
import uuid

import structlog
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from models.marketplace import OrderFilled
from services.marketplace.orders import OrderOutcome
from temporal.ids import order_workflow_id
from temporal.starters import start_deal

ORDER_FILLED_SIGNAL = "order_filled"
log = structlog.get_logger(__name__)


async def signal_order_refresh(client: Client, order_id: uuid.UUID) -> None:
    """Ask the order's workflow to re-read its order; a workflow that no longer runs needs nothing.

    Any other failure (Temporal unreachable) raises, so a durable caller retries.
    """
    try:
        await client.get_workflow_handle(order_workflow_id(order_id)).signal(
            ORDER_FILLED_SIGNAL, OrderFilled(order_id=order_id)
        )
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise


async def _signal(client: Client, order_id: uuid.UUID) -> None:
    """Best effort: a lost signal is made good by the `order-workflows` backstop, from the outbox."""
    try:
        await signal_order_refresh(client, order_id)
    except RPCError as error:
        log.info("order workflow not signalled", order_id=str(order_id), error=str(error))


async def refresh_order_workflows(client: Client, order_ids: list[uuid.UUID]) -> None:
    """Tell the workflows of orders changed outside them to re-read their order (safe to repeat)."""
    await asyncio.gather(*(_signal(client, order_id) for order_id in order_ids))


async def after_commit(client: Client, outcome: OrderOutcome, *, task_queue: str) -> None:
    """Start a deal per trade and signal the resting orders that were filled (both safe to repeat)."""
    await asyncio.gather(
        *(start_deal(client, params, task_queue) for params in outcome.deals),
        refresh_order_workflows(client, outcome.touched_order_ids),
    )
