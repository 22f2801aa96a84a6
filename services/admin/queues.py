"""Compliance review queues with their service levels: what waits, for how long, and what is overdue."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from models.admin import QueueItem, ReviewQueues
from models.base import utcnow
from services import holdings, profiles

KYC_SLA_SECONDS = 24 * 3600
ACCREDITATION_SLA_SECONDS = 48 * 3600
HOLDING_SLA_SECONDS = 72 * 3600


def _item(
    kind: str, id: uuid.UUID, user_id: uuid.UUID, status: str, submitted_at: datetime, sla: int, now: datetime
) -> QueueItem:
    age = max(0, int((now - submitted_at).total_seconds()))
    return QueueItem(
        id=id,
        user_id=user_id,
        kind=kind,
        status=status,
        submitted_at=submitted_at,
        age_seconds=age,
        sla_seconds=sla,
        overdue=age > sla,
    )


async def review_queues(session: AsyncSession, *, now: datetime | None = None) -> ReviewQueues:
    """Oldest first in each queue; `overdue` when the item waited longer than its queue's SLA."""
    now = now or utcnow()
    kyc = await profiles.list_kyc_reviews(session, limit=200)
    accreditations = await profiles.pending_accreditations(session)
    lots = await holdings.pending_verifications(session)
    return ReviewQueues(
        kyc_escalations=[_item("kyc", k.id, k.user_id, k.status, k.created_at, KYC_SLA_SECONDS, now) for k in kyc],
        accreditations=[
            _item("accreditation", a.id, a.user_id, a.status, a.created_at, ACCREDITATION_SLA_SECONDS, now)
            for a in accreditations
        ],
        holding_verifications=[
            _item("holding", h.id, h.owner_id, h.status, h.created_at, HOLDING_SLA_SECONDS, now) for h in lots
        ],
    )
