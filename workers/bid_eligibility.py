"""Withdraws the resting bids of a buyer who may no longer buy, from the profiles events.

A bid is checked against its buyer's KYC and accreditation when it is placed. When the
accreditation expires (or KYC or an accreditation is rejected) while bids rest, matching
already passes over them, but they would still show on the book (even above the best ask)
and keep their time priority until the buyer is re-accredited. This consumer cancels them
through their `order-{id}` workflows, as a compliance freeze does. It re-reads eligibility
first, so an event about a superseded check (a newer approval stands) cancels nothing, and a
redelivered event finds nothing left to cancel.
"""

from __future__ import annotations

import uuid

import structlog
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from events.envelope import CloudEvent
from models.marketplace import Side
from services import marketplace, profiles
from temporal.order_updates import cancel_orders

log = structlog.get_logger(__name__)

INELIGIBILITY_EVENTS = frozenset(
    {"profiles.accreditation.expired", "profiles.accreditation.rejected", "profiles.kyc.rejected"}
)


class IneligibleBidCanceller:
    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    async def __call__(self, session: AsyncSession, event: CloudEvent) -> None:
        try:
            user_id = uuid.UUID(str(event.data.get("user_id")))
        except ValueError:
            log.warning("profiles event without a user id", event_id=str(event.id))
            return
        eligibility = await profiles.buyer_eligibility(session, user_id)
        if eligibility.eligible:
            return
        bids = [order for order in await marketplace.live_orders_of(session, user_id) if order.side is Side.BUY]
        reason = f"the buyer may no longer buy: {', '.join(eligibility.reasons)}"
        await cancel_orders(self.client, bids, self.task_queue, reason)
