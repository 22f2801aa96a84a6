"""`/v1/holdings`: investors declare positions, compliance or the issuer verifies them."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, status
from sqlmodel.ext.asyncio.session import AsyncSession

from api.auth import CurrentUser, require
from api.deps import SessionDep, SessionsDep
from models.holdings import HoldingCreate, HoldingDecision, HoldingPage, HoldingRead, HoldingStatus, MovementPage
from pap.db import transaction
from services import admin, holdings
from services.identity.permissions import Permission
from services.identity.tokens import Principal
from services.pagination import DEFAULT_LIMIT, MAX_LIMIT

router = APIRouter(prefix="/v1/holdings", tags=["holdings"])
Owner = Annotated[Principal, Depends(require(Permission.HOLDINGS_OWN))]
Verifier = Annotated[Principal, Depends(require(Permission.HOLDINGS_VERIFY))]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=500)]


@router.post("", status_code=status.HTTP_201_CREATED)
async def submit_holding(body: HoldingCreate, principal: Owner, sessions: SessionsDep) -> HoldingRead:
    async with transaction(sessions) as session:
        return await holdings.submit_holding(session, principal.user_id, body)


async def _audit_decision(
    session: AsyncSession, principal: Principal, action: str, holding: HoldingRead, body: HoldingDecision | None
) -> None:
    """A verified holding is tradable shares: who decided, on what, is kept in the tamper-evident audit log."""
    data = {"owner_id": str(holding.owner_id), "quantity": holding.quantity, "reason": body.reason if body else None}
    await admin.record_audit(
        session, actor_id=principal.user_id, action=action, entity_type="holding", entity_id=holding.id, data=data
    )


@router.post("/{holding_id}/verify")
async def verify_holding(
    holding_id: uuid.UUID,
    principal: Verifier,
    sessions: SessionsDep,
    body: Annotated[HoldingDecision | None, Body()] = None,
) -> HoldingRead:
    async with transaction(sessions) as session:
        decided = await holdings.verify_holding(session, principal, holding_id, body.reason if body else None)
        await _audit_decision(session, principal, "holdings.holding.verified", decided, body)
        return decided


@router.post("/{holding_id}/reject")
async def reject_holding(
    holding_id: uuid.UUID,
    principal: Verifier,
    sessions: SessionsDep,
    body: Annotated[HoldingDecision | None, Body()] = None,
) -> HoldingRead:
    async with transaction(sessions) as session:
        decided = await holdings.reject_holding(session, principal, holding_id, body.reason if body else None)
        await _audit_decision(session, principal, "holdings.holding.rejected", decided, body)
        return decided


@router.get("")
async def list_my_holdings(
    principal: CurrentUser,
    session: SessionDep,
    security_id: uuid.UUID | None = None,
    status: HoldingStatus | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> HoldingPage:
    return await holdings.list_holdings(
        session, principal.user_id, security_id=security_id, status=status, limit=limit, cursor=cursor
    )


@router.get("/{holding_id}")
async def get_holding(holding_id: uuid.UUID, principal: CurrentUser, session: SessionDep) -> HoldingRead:
    return await holdings.get_holding_for(session, principal, holding_id)


@router.get("/{holding_id}/movements")
async def list_movements(
    holding_id: uuid.UUID,
    principal: CurrentUser,
    session: SessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> MovementPage:
    return await holdings.list_movements(session, principal, holding_id, limit=limit, cursor=cursor)
