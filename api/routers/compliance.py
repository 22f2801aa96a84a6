"""`/v1/compliance/*`: account freezes, deal holds, review queues and exports."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from api.auth import require
from api.deps import RedisDep, SessionDep, SessionsDep, SettingsDep, TemporalDep
from models.admin import FreezeRead, OptionalReason, ReasonRequest, ReviewQueues
from models.deals import HoldInput
from pap.db import transaction
from services import admin, deals, marketplace
from services.admin import exports, ops, queues
from services.errors import DomainError
from services.identity.permissions import Permission
from services.identity.tokens import Principal
from temporal.order_updates import cancel_orders

router = APIRouter(prefix="/v1/compliance", tags=["compliance"])

Reviewer = Annotated[Principal, Depends(require(Permission.COMPLIANCE_REVIEW))]


@router.post("/users/{user_id}/freeze")
async def freeze_user(
    user_id: uuid.UUID,
    body: ReasonRequest,
    principal: Reviewer,
    sessions: SessionsDep,
    redis: RedisDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> FreezeRead:
    """No new orders or deals for this account, every session of it ends, its resting orders are cancelled
    and its open deals are put on hold.

    The freeze commits first (nothing new can be placed), then each live order is cancelled through its
    workflow, which releases its reserved shares, and each open deal's workflow is told to hold. Repeating
    the call finishes what an interrupted one left.
    """
    async with transaction(sessions) as session:
        frozen = await admin.freeze_account(
            session, redis, user_id=user_id, actor_id=principal.user_id, reason=body.reason
        )
        live = await marketplace.live_orders_of(session, user_id)
    cancelled = await cancel_orders(temporal, live, settings.task_queue, "account frozen by compliance")
    held = await _hold_open_deals(user_id, body.reason, principal, sessions, temporal)
    return frozen.model_copy(update={"orders_cancelled": cancelled, "deals_held": held})


async def _hold_open_deals(
    user_id: uuid.UUID, reason: str, principal: Principal, sessions: SessionsDep, temporal: TemporalDep
) -> int:
    async with sessions() as session:
        open_deals = await deals.open_deals_of(session, user_id)
    held = 0
    for deal in open_deals:
        try:
            async with transaction(sessions) as session:
                await _hold(deal.id, f"account frozen: {reason}", principal, session, temporal, place=True)
        except DomainError:  # finished in the meantime
            continue
        held += 1
    return held


@router.post("/users/{user_id}/unfreeze")
async def unfreeze_user(
    user_id: uuid.UUID, body: OptionalReason, principal: Reviewer, session: SessionDep
) -> FreezeRead:
    return await admin.unfreeze_account(session, user_id=user_id, actor_id=principal.user_id, reason=body.reason)


@router.get("/users/{user_id}/freeze")
async def freeze_status(user_id: uuid.UUID, principal: Reviewer, session: SessionDep) -> FreezeRead:
    return FreezeRead(user_id=user_id, frozen=await admin.is_frozen(session, user_id))


async def _hold(
    deal_id: uuid.UUID, reason: str, principal: Principal, session: SessionDep, temporal: TemporalDep, *, place: bool
) -> dict[str, Any]:
    deal = await deals.get_deal(session, deal_id)
    deals.ensure_not_a_party(principal, deal.buyer_id, deal.seller_id)
    await ops.signal_hold(temporal, deal_id, HoldInput(actor_id=principal.user_id, reason=reason), place=place)
    on_hold = await ops.record_hold(session, deal_id, actor_id=principal.user_id, reason=reason, place=place)
    return {"deal_id": str(deal_id), "on_hold": on_hold, "reason": reason}


@router.post("/deals/{deal_id}/hold")
async def place_hold(
    deal_id: uuid.UUID, body: ReasonRequest, principal: Reviewer, session: SessionDep, temporal: TemporalDep
) -> dict[str, Any]:
    """Pause the deal at its next step (its workflow waits until the hold is lifted; a cancel still works)."""
    return await _hold(deal_id, body.reason, principal, session, temporal, place=True)


@router.post("/deals/{deal_id}/hold/lift")
async def lift_hold(
    deal_id: uuid.UUID, body: OptionalReason, principal: Reviewer, session: SessionDep, temporal: TemporalDep
) -> dict[str, Any]:
    return await _hold(deal_id, body.reason or "hold lifted", principal, session, temporal, place=False)


@router.get("/queues")
async def review_queues(principal: Reviewer, session: SessionDep) -> ReviewQueues:
    """KYC escalations, accreditations and holding verifications waiting, with age and SLA."""
    return await queues.review_queues(session)


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _export(
    rows: list[dict[str, Any]], columns: list[str], name: str, fmt: Literal["csv", "json"]
) -> StreamingResponse:
    if fmt == "csv":
        return StreamingResponse(
            exports.csv_lines(columns, rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )

    def json_chunks() -> Iterator[str]:
        yield "["
        for index, row in enumerate(rows):
            yield ("," if index else "") + json.dumps(row)
        yield "]"

    return StreamingResponse(json_chunks(), media_type="application/json")


FromQuery = Annotated[datetime | None, Query(alias="from", description="inclusive, ISO 8601 (UTC if no offset)")]
ToQuery = Annotated[datetime | None, Query(alias="to", description="exclusive")]
FormatQuery = Annotated[Literal["csv", "json"], Query(alias="format")]
EXPORT_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Rows as a JSON array (format=json) or a CSV attachment with a header line (format=csv)",
        "content": {"application/json": {"schema": {"type": "array", "items": {"type": "object"}}}, "text/csv": {}},
    }
}


async def _audited_export(
    session: SessionDep,
    principal: Principal,
    name: str,
    rows: list[dict[str, Any]],
    columns: list[str],
    window: tuple[datetime | None, datetime | None],
    fmt: Literal["csv", "json"],
) -> StreamingResponse:
    """Every export is audited (who, which window, how many rows) before it is streamed."""
    start, end = window
    await admin.record_audit(
        session,
        actor_id=principal.user_id,
        action=f"compliance.export_{name}",
        entity_type="export",
        entity_id=None,
        data={"from": start, "to": end, "format": fmt, "rows": len(rows)},
    )
    return _export(rows, columns, name, fmt)


@router.get("/exports/trades", response_class=StreamingResponse, responses=EXPORT_CONTENT)
async def export_trades(
    principal: Reviewer, session: SessionDep, start: FromQuery = None, end: ToQuery = None, fmt: FormatQuery = "json"
) -> StreamingResponse:
    rows = await exports.trade_rows(session, _utc(start), _utc(end))
    return await _audited_export(session, principal, "trades", rows, exports.TRADE_COLUMNS, (start, end), fmt)


@router.get("/exports/deals", response_class=StreamingResponse, responses=EXPORT_CONTENT)
async def export_deals(
    principal: Reviewer, session: SessionDep, start: FromQuery = None, end: ToQuery = None, fmt: FormatQuery = "json"
) -> StreamingResponse:
    rows = await exports.deal_rows(session, _utc(start), _utc(end))
    return await _audited_export(session, principal, "deals", rows, exports.DEAL_COLUMNS, (start, end), fmt)
