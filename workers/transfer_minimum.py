"""Withdraws resting orders a company's raised minimum transfer left untradable, from the companies events.

Every trade must move at least the company's minimum transfer, so an order with fewer shares
left than a newly raised minimum can never trade again: it would rest on the book for good (a
quote nobody can take) with a seller's shares reserved. On `companies.company.updated` this
consumer reads the company's policy as it is now and cancels such orders through their
`order-{id}` workflows, which release a sell's shares; their owners are told by the
notifications consumer. A redelivered event finds nothing left to cancel.
"""

from __future__ import annotations

import uuid

import structlog
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from events.envelope import CloudEvent
from models.companies import TransferPolicy
from services import companies, marketplace
from services.companies.registry import COMPANY_UPDATED
from services.errors import NotFound
from temporal.order_updates import cancel_orders

log = structlog.get_logger(__name__)

POLICY_EVENTS = frozenset({COMPANY_UPDATED})


class BelowMinimumCanceller:
    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    async def __call__(self, session: AsyncSession, event: CloudEvent) -> None:
        if "transfer_policy" not in event.data.get("changed", []):
            return
        try:
            company = await companies.load_company(session, uuid.UUID(str(event.subject)))
        except (ValueError, NotFound):
            log.warning("company event without a known company", event_id=str(event.id))
            return
        minimum = TransferPolicy.model_validate(company.transfer_policy).minimum_transfer_shares
        if not minimum:
            return
        reason = f"the shares left are below {company.name}'s minimum transfer of {minimum} shares"
        untradable = await marketplace.live_orders_below(session, company.id, minimum)
        await cancel_orders(self.client, untradable, self.task_queue, reason)
