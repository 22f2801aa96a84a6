"""Makes sure every deal has its `deal-{id}` workflow.

The API starts the workflow right after the deal commits (a matched trade, or a
deal manager's `POST /v1/deals`); this consumer is the at-least-once backstop for a
process that died in between: the outbox still delivers `deals.created`, and, once
the event is `workflow_backstop_delay_seconds` old, a deal still in `created`
gets its workflow from the deal row (its terms and frozen policy). A deal past
`created` has one already (only its workflow moves it), so the check costs no
Temporal call; a running workflow is kept; an ended deal never runs again.
"""

from __future__ import annotations

import uuid

import structlog
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from events.envelope import CloudEvent
from models.deals import DealStage
from services import deals
from services.errors import NotFound
from temporal.starters import start_deal

log = structlog.get_logger(__name__)

DEAL_CREATED = "deals.created"


class DealWorkflowStarter:
    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    async def __call__(self, session: AsyncSession, event: CloudEvent) -> None:
        try:
            deal = await deals.get_deal(session, uuid.UUID(str(event.data.get("deal_id"))))
        except (ValueError, NotFound):
            log.warning("deal event without a known deal", event_id=str(event.id))
            return
        if deal.stage != DealStage.CREATED:
            return  # its workflow has moved it on (or ended it)
        try:
            await start_deal(self.client, deals.workflow_input(deal), self.task_queue)
        except WorkflowAlreadyStartedError:
            pass  # it ended between our read and the start
