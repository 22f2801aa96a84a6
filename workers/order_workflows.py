"""Keeps every order's `order-{id}` workflow in step with the order, from the outbox.

The API starts the workflow right after the order commits and notes the start in
Redis; matching, compliance and deals signal a workflow whose order they changed.
Both happen after commit, so a process that dies in between loses them. This
consumer is the at-least-once backstop: once an order event is
`workflow_backstop_delay_seconds` old,
- `marketplace.order.created` for an order without a start note starts its workflow
  from the order as it is now (a running one is kept, a finished one is not started again);
- a change (`updated`, `filled`, `cancelled`) asks a running workflow to re-read its
  order (a finished workflow needs nothing; a repeated re-read is harmless).
"""

from __future__ import annotations

import uuid

import structlog
from redis.asyncio import Redis
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from events.envelope import CloudEvent
from models.marketplace import LIVE_STATUSES
from services import marketplace
from services.marketplace.after_commit import signal_order_refresh
from services.marketplace.common import ORDER_CANCELLED, ORDER_CREATED, ORDER_FILLED, ORDER_UPDATED
from temporal.ids import order_workflow_id
from temporal.start_hints import was_started
from temporal.starters import start_lifecycle

log = structlog.get_logger(__name__)

ORDER_CHANGES = frozenset({ORDER_UPDATED, ORDER_FILLED, ORDER_CANCELLED})
ORDER_EVENTS = ORDER_CHANGES | {ORDER_CREATED}


class OrderWorkflowBackstop:
    def __init__(self, client: Client, redis: Redis, task_queue: str) -> None:
        self.client = client
        self.redis = redis
        self.task_queue = task_queue

    async def __call__(self, session: AsyncSession, event: CloudEvent) -> None:
        try:
            order_id = uuid.UUID(str(event.data.get("order_id")))
        except ValueError:
            log.warning("order event without an order id", event_id=str(event.id))
            return
        if event.type in ORDER_CHANGES:
            await signal_order_refresh(self.client, order_id)
        else:
            await self._start(session, order_id, event)

    async def _start(self, session: AsyncSession, order_id: uuid.UUID, event: CloudEvent) -> None:
        if await was_started(self.redis, order_workflow_id(order_id)):
            return  # the API started it
        try:
            order = await marketplace.get_order(session, order_id)
        except marketplace.OrderNotFound:
            log.warning("order event without a known order", event_id=str(event.id))
            return
        if order.status not in LIVE_STATUSES:
            return  # filled, cancelled or expired already: its workflow (if any) has nothing left to run
        try:
            await start_lifecycle(self.client, order, self.task_queue)
        except WorkflowAlreadyStartedError:
            pass  # it ran to its end before this event arrived
