"""Deal operations for ops and compliance: stuck deals, the merged history, holds, retries, cancellation.

These talk to the DealExecution workflow (signals, Updates, describe, history)
and write one audit entry per action, with the actor.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.api.history.v1 import HistoryEvent as TemporalEvent
from temporalio.api.workflowservice.v1 import ResetActivityRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from models.admin import DealHistory, HistoryEvent, RetryReport, StuckDeal
from models.base import utcnow
from models.deals import CancelInput, DealState, HoldInput
from services import deals
from services.admin.audit import list_audit, record_audit
from services.deals.errors import DealStageConflict
from temporal.ids import deal_workflow_id

STAGE_SLA: dict[str, timedelta] = {
    "created": timedelta(hours=1),
    "participants_confirmed": timedelta(hours=1),
    "documents_generated": timedelta(hours=1),
    "awaiting_issuer": timedelta(days=35),
    "awaiting_signatures": timedelta(days=8),
    "awaiting_funding": timedelta(days=6),
    "settling": timedelta(days=31),
}
"""How long a deal may sit in a stage before ops should look at it (the workflow's own deadlines plus slack)."""


async def stuck_deals(
    session: AsyncSession, *, now: datetime | None = None, sla: dict[str, timedelta] | None = None
) -> list[StuckDeal]:
    """Open deals whose current stage has lasted longer than its SLA, the oldest first."""
    now = now or utcnow()
    limits = STAGE_SLA | (sla or {})
    stuck: list[StuckDeal] = []
    for deal in await deals.open_deals(session):
        limit = limits.get(deal.stage)
        if limit is None:
            continue
        age = now - deal.updated_at
        if age > limit:
            stuck.append(
                StuckDeal(
                    deal_id=deal.id,
                    stage=deal.stage,
                    stage_since=deal.updated_at,
                    age_seconds=int(age.total_seconds()),
                    sla_seconds=int(limit.total_seconds()),
                    on_hold=deal.on_hold,
                )
            )
    return stuck


def _handle(client: Client, deal_id: uuid.UUID) -> WorkflowHandle[Any, Any]:
    return client.get_workflow_handle(deal_workflow_id(deal_id))


def _payload_text(payloads: Any) -> str | None:
    try:
        return ", ".join(p.data.decode()[:500] for p in payloads.payloads) or None
    except (AttributeError, UnicodeDecodeError):
        return None


def _workflow_event(event: TemporalEvent, scheduled: dict[int, str]) -> HistoryEvent | None:
    """The events an operator cares about: signals, updates, activity outcomes, start and end."""
    at = event.event_time.ToDatetime(tzinfo=UTC)
    kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_").lower()

    def make(name: str | None, detail: str | None = None) -> HistoryEvent:
        return HistoryEvent(at=at, source="workflow", kind=kind, name=name, detail=detail, event_id=event.event_id)

    match event.event_type:
        case EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            return make(event.workflow_execution_started_event_attributes.workflow_type.name)
        case EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            attrs = event.workflow_execution_signaled_event_attributes
            return make(attrs.signal_name, _payload_text(attrs.input))
        case EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request
            return make(request.input.name, _payload_text(request.input.args))
        case EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
            return make(None)
        case EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs_s = event.activity_task_scheduled_event_attributes
            scheduled[event.event_id] = attrs_s.activity_type.name
            return None
        case EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            return make(scheduled.get(event.activity_task_completed_event_attributes.scheduled_event_id))
        case EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
            attrs_f = event.activity_task_failed_event_attributes
            return make(scheduled.get(attrs_f.scheduled_event_id), attrs_f.failure.message)
        case EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
            attrs_t = event.activity_task_timed_out_event_attributes
            return make(scheduled.get(attrs_t.scheduled_event_id), attrs_t.failure.message)
        case (
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
            | EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED
            | EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED
            | EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT
        ):
            return make(None)
    return None


async def deal_history(
    session: AsyncSession, client: Client, deal_id: uuid.UUID, *, as_of: datetime | None = None
) -> DealHistory:
    """Temporal history, audit entries and the deal timeline merged in time order, up to `as_of`."""
    await deals.get_deal(session, deal_id)
    events: list[HistoryEvent] = []
    try:
        history = await _handle(client, deal_id).fetch_history()
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
    else:
        scheduled: dict[int, str] = {}
        for raw in history.events:
            converted = _workflow_event(raw, scheduled)
            if converted is not None:
                events.append(converted)
    for entry in await list_audit(session, entity_id=str(deal_id), limit=500):
        events.append(
            HistoryEvent(
                at=entry.at,
                source="audit",
                kind=entry.action,
                name=str(entry.actor_id) if entry.actor_id else None,
                detail=str(entry.data.get("reason") or entry.data.get("detail") or "") or None,
            )
        )
    for step in await deals.timeline(session, deal_id):
        events.append(HistoryEvent(at=step.at, source="timeline", kind=step.stage, name=step.actor, detail=step.detail))
    if as_of is not None:
        events = [e for e in events if e.at <= as_of]
    events.sort(key=lambda e: (e.at, e.event_id or 0))
    return DealHistory(deal_id=deal_id, as_of=as_of, events=events)


async def signal_hold(client: Client, deal_id: uuid.UUID, hold: HoldInput, *, place: bool) -> None:
    """Send `place_hold`/`lift_hold`; a finished workflow is a 409."""
    try:
        await _handle(client, deal_id).signal("place_hold" if place else "lift_hold", hold)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise DealStageConflict("The deal's workflow has finished.") from None
        raise


async def record_hold(
    session: AsyncSession, deal_id: uuid.UUID, *, actor_id: uuid.UUID, reason: str, place: bool
) -> bool:
    deal = await deals.set_on_hold(session, deal_id, place)
    await record_audit(
        session,
        actor_id=actor_id,
        action="compliance.deal_hold_placed" if place else "compliance.deal_hold_lifted",
        entity_type="deal",
        entity_id=deal_id,
        data={"reason": reason, "stage": deal.stage},
    )
    return deal.on_hold


async def cancel_deal(client: Client, deal_id: uuid.UUID, request: CancelInput) -> DealState:
    """The workflow's `cancel` Update: returns once the compensations have run."""
    try:
        state: DealState = await _handle(client, deal_id).execute_update("cancel", request, result_type=DealState)
    except WorkflowUpdateFailedError as error:
        if isinstance(error.cause, ApplicationError) and error.cause.type == "DealStageConflict":
            raise DealStageConflict(error.cause.message) from None
        raise
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise DealStageConflict("The deal's workflow has finished.") from None
        raise
    return state


async def retry_failing_steps(client: Client, deal_id: uuid.UUID) -> RetryReport:
    """Retry a deal's failing steps now, and report every pending activity.

    Activities of DealExecution retry forever with a capped backoff; once ops have
    fixed the cause shown in `last_failure`, this resets the failing activities
    (Temporal's ResetActivity) so their next attempt runs at once instead of after
    the backoff. Steps are idempotent, so an extra attempt is always safe.
    """
    handle = _handle(client, deal_id)
    try:
        description = await handle.describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise DealStageConflict("The deal has no workflow.") from None
        raise
    status = description.status or WorkflowExecutionStatus.RUNNING
    pending: list[dict[str, Any]] = []
    for activity in description.raw_description.pending_activities:
        last_failure = activity.last_failure.message if activity.HasField("last_failure") else None
        pending.append(
            {
                "activity": activity.activity_type.name,
                "activity_id": activity.activity_id,
                "attempt": activity.attempt,
                "state": PendingActivityState.Name(activity.state).removeprefix("PENDING_ACTIVITY_STATE_").lower(),
                "last_failure": last_failure,
                "next_attempt_at": activity.next_attempt_schedule_time.ToDatetime(tzinfo=UTC).isoformat()
                if activity.HasField("next_attempt_schedule_time")
                else None,
            }
        )
    failing = [p for p in pending if p["last_failure"]]
    retried: list[str] = []
    if status is not WorkflowExecutionStatus.RUNNING:
        detail = f"The workflow is {status.name.lower()}; there is nothing to retry."
    elif failing:
        for step in failing:
            await client.workflow_service.reset_activity(
                ResetActivityRequest(
                    namespace=client.namespace,
                    execution=WorkflowExecution(workflow_id=handle.id),
                    id=step["activity_id"],
                )
            )
            retried.append(step["activity"])
        detail = f"Retrying now: {', '.join(retried)} (the attempt count starts again)."
    else:
        detail = "No activity is failing; the deal is waiting for a person or a timer."
    return RetryReport(
        deal_id=deal_id, status=status.name.lower(), pending_activities=pending, retried=retried, detail=detail
    )


async def audit_ops(
    session: AsyncSession, *, actor_id: uuid.UUID, action: str, deal_id: uuid.UUID, data: dict[str, Any]
) -> None:
    await record_audit(session, actor_id=actor_id, action=action, entity_type="deal", entity_id=deal_id, data=data)
