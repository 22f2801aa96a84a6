"""Makes sure every live order has its `order-{id}` workflow.

The API starts the workflow right after the order commits; this consumer is the
at-least-once backstop for a process that died in between: the outbox still
delivers `marketplace.order.created`, and the workflow is started from the order
as it is now (a running one is kept, a finished one is not started again).
"""

from __future__ import annotations

import uuid

import structlog
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from events.envelope import CloudEvent
from models.marketplace import LIVE_STATUSES
from services import marketplace
from temporal.starters import start_lifecycle

log = structlog.get_logger(__name__)

ORDER_CREATED = "marketplace.order.created"


class OrderWorkflowStarter:
    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    async def __call__(self, session: AsyncSession, event: CloudEvent) -> None:
        try:
            order = await marketplace.get_order(session, uuid.UUID(str(event.data.get("order_id"))))
        except (ValueError, marketplace.OrderNotFound):
            log.warning("order event without a known order", event_id=str(event.id))
            return
        if order.status not in LIVE_STATUSES:
            return  # filled, cancelled or expired already: its workflow (if any) has nothing left to run
        try:
            await start_lifecycle(self.client, order, self.task_queue)
        except WorkflowAlreadyStartedError:
            pass  # it ran to its end before this event arrived
