"""Makes sure every live order has its `order-{id}` workflow.

The API starts the workflow right after the order commits and notes the start in
Redis; this consumer is the at-least-once backstop for a process that died in
between: the outbox still delivers `marketplace.order.created`, and, once the event
is `workflow_backstop_delay_seconds` old, an order without that note gets its
workflow from the order as it is now (a running one is kept, a finished one is not
started again).
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
from temporal.ids import order_workflow_id
from temporal.start_hints import was_started
from temporal.starters import start_lifecycle

log = structlog.get_logger(__name__)

ORDER_CREATED = "marketplace.order.created"


class OrderWorkflowStarter:
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
