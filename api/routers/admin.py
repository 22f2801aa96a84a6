"""`/v1/admin/*`: user roles and the audit trail."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.auth import require
from api.deps import RedisDep, SessionDep
from models.admin import AuditEntryRead, AuditPage, VerifyResult
from models.identity import RolesUpdate, UserRead
from services import admin, identity
from services.identity.permissions import Permission, Role
from services.identity.tokens import Principal

router = APIRouter(prefix="/v1/admin", tags=["admin"])

AuditReader = Annotated[Principal, Depends(require(Permission.AUDIT_READ))]
UserManager = Annotated[Principal, Depends(require(Permission.USERS_MANAGE))]


@router.post("/users/{user_id}/roles")
async def set_roles(
    user_id: uuid.UUID, body: RolesUpdate, principal: UserManager, session: SessionDep, redis: RedisDep
) -> UserRead:
    """Replace the user's roles (an issuer needs `company_id`). Added roles arrive with the next token
    refresh; a removed role or company ends the user's sessions at once (they sign in again)."""
    user = await identity.change_roles(
        session,
        redis,
        actor_id=principal.user_id,
        user_id=user_id,
        roles=[Role(r) for r in body.roles],
        company_id=body.company_id,
    )
    return identity.to_read(user)


@router.get("/audit")
async def list_audit(
    principal: AuditReader,
    session: SessionDep,
    entity_id: Annotated[str | None, Query(max_length=128)] = None,
    action: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[int | None, Query(ge=1, description="next_cursor of the previous page")] = None,
) -> AuditPage:
    """Newest first."""
    rows = await admin.list_audit(session, entity_id=entity_id, action=action, limit=limit, before_seq=cursor)
    items = [AuditEntryRead.model_validate(row.model_dump()) for row in rows]
    next_cursor = str(items[-1].seq) if len(items) == limit else None
    return AuditPage(items=items, next_cursor=next_cursor)


@router.get("/audit/verify")
async def verify_audit(principal: AuditReader, session: SessionDep) -> VerifyResult:
    """Recompute the hash chain: `{ok: true, entries: N}` or the first broken link."""
    return await admin.verify_chain(session)
