"""`/v1/ops/*`: operating running deals (stuck deals, merged history, retry report, cancel); all audited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from api.auth import require
from api.deps import SessionDep, SessionsDep, TemporalDep
from models.admin import DealHistory, ReasonRequest, RetryReport, StuckDeal
from models.deals import CancelInput, DealState
from pap.db import transaction
from services import deals
from services.admin import ops
from services.identity.permissions import Permission
from services.identity.tokens import Principal

router = APIRouter(prefix="/v1/ops", tags=["ops"])

Operator = Annotated[Principal, Depends(require(Permission.OPS_OPERATE))]


@router.get("/deals/stuck")
async def stuck_deals(principal: Operator, session: SessionDep) -> dict[str, Any]:
    """Open deals whose current stage is older than its SLA."""
    items: list[StuckDeal] = await ops.stuck_deals(session)
    return {
        "items": [i.model_dump(mode="json") for i in items],
        "sla_seconds": {stage: int(limit.total_seconds()) for stage, limit in ops.STAGE_SLA.items()},
    }


@router.get("/deals/{deal_id}/history")
async def deal_history(
    deal_id: uuid.UUID,
    principal: Operator,
    session: SessionDep,
    temporal: TemporalDep,
    as_of: Annotated[datetime | None, Query(description="only events at or before this instant")] = None,
) -> DealHistory:
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    history = await ops.deal_history(session, temporal, deal_id, as_of=as_of)
    await ops.audit_ops(
        session,
        actor_id=principal.user_id,
        action="ops.deal_history_viewed",
        deal_id=deal_id,
        data={"as_of": as_of.isoformat() if as_of else None},
    )
    return history


@router.post("/deals/{deal_id}/retry")
async def retry_deal(
    deal_id: uuid.UUID, principal: Operator, session: SessionDep, temporal: TemporalDep
) -> RetryReport:
    """Retry the deal's failing steps now (after fixing their cause) and report every pending activity."""
    await deals.get_deal(session, deal_id)
    report = await ops.retry_failing_steps(temporal, deal_id)
    await ops.audit_ops(
        session,
        actor_id=principal.user_id,
        action="ops.deal_retry_requested",
        deal_id=deal_id,
        data={"status": report.status, "pending": report.pending_activities, "retried": report.retried},
    )
    return report


@router.post("/deals/{deal_id}/cancel")
async def cancel_deal(
    deal_id: uuid.UUID, body: ReasonRequest, principal: Operator, sessions: SessionsDep, temporal: TemporalDep
) -> DealState:
    """The workflow's `cancel` Update (compensations run before it answers)."""
    async with sessions() as session:
        deal = await deals.get_deal(session, deal_id)
    deals.ensure_not_a_party(principal, deal.buyer_id, deal.seller_id)
    async with transaction(sessions) as session:  # before the Update: a cancel is never left without its operator
        await ops.audit_ops(
            session,
            actor_id=principal.user_id,
            action="ops.deal_cancel_requested",
            deal_id=deal_id,
            data={"reason": body.reason},
        )
    state = await ops.cancel_deal(temporal, deal_id, CancelInput(reason=body.reason, actor_id=principal.user_id))
    async with transaction(sessions) as session:
        await ops.audit_ops(
            session,
            actor_id=principal.user_id,
            action="ops.deal_cancelled",
            deal_id=deal_id,
            data={"reason": body.reason, "stage": state.stage.value},
        )
    return state
