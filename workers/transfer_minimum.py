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
from models.marketplace import CancelOrderInput
from services import companies, marketplace
from services.companies.registry import COMPANY_UPDATED
from services.errors import DomainError, NotFound
from temporal.order_updates import change_order

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
        for order in await marketplace.live_orders_below(session, company.id, minimum):
            request = CancelOrderInput(order_id=order.id, user_id=order.user_id, reason=reason)
            try:
                await change_order(self.client, order, self.task_queue, "cancel", request)
            except DomainError:  # filled or cancelled in the meantime: nothing left to cancel
                continue
