"""Accreditation (Reg D 506(c)): submission, compliance decisions, expiry."""

from __future__ import annotations

import uuid

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from events import topics
from events.outbox import record_event
from models.profiles import (
    Accreditation,
    AccreditationDecisionInput,
    AccreditationRead,
    AccreditationSubmit,
)
from pap.db import lock_for_transaction
from services.admin import record_audit
from services.errors import Conflict, Forbidden, NotFound

SOURCE = "/pap/profiles"
ACCREDITATION_EXPIRED = "profiles.accreditation.expired"


class AccreditationPending(Conflict):
    type = "accreditation-pending"
    title = "An accreditation is already waiting for review"


class AccreditationNotPending(Conflict):
    type = "accreditation-not-pending"
    title = "This accreditation is not pending review"


class OwnAccreditation(Forbidden):
    type = "own-accreditation"
    title = "Reviewers cannot decide on their own accreditation"


def accreditation_workflow_id(accreditation_id: uuid.UUID) -> str:
    return f"accreditation-{accreditation_id}"


def to_read(row: Accreditation) -> AccreditationRead:
    return AccreditationRead(**row.model_dump(), workflow_id=accreditation_workflow_id(row.id))


async def _event(session: AsyncSession, row: Accreditation, type_: str) -> None:
    await record_event(
        session,
        topic=topics.PROFILES,
        key=str(row.user_id),
        type=type_,
        source=SOURCE,
        subject=str(row.user_id),
        data={
            "user_id": str(row.user_id),
            "accreditation_id": str(row.id),
            "method": row.method,
            "status": row.status,
            "expires_at": row.expires_at.isoformat() if row.expires_at else None,
        },
    )


async def submit_accreditation(session: AsyncSession, user_id: uuid.UUID, body: AccreditationSubmit) -> Accreditation:
    """A new verification (also how an investor re-verifies); one pending at a time."""
    await lock_for_transaction(session, f"profiles:accreditation:{user_id}")  # a double submit records one
    pending = (
        await session.exec(
            select(Accreditation).where(Accreditation.user_id == user_id, Accreditation.status == "pending_review")
        )
    ).first()
    if pending is not None:
        raise AccreditationPending("An accreditation is already pending review.", accreditation_id=str(pending.id))
    row = Accreditation(user_id=user_id, status="pending_review", **body.model_dump())
    session.add(row)
    await session.flush()
    await _event(session, row, "profiles.accreditation.submitted")
    return row


async def get_accreditation(
    session: AsyncSession, accreditation_id: uuid.UUID, *, viewer_id: uuid.UUID | None = None
) -> Accreditation:
    """With `viewer_id`, only the owner sees it (others get 404, hiding its existence)."""
    row = await session.get(Accreditation, accreditation_id)
    if row is None or (viewer_id is not None and row.user_id != viewer_id):
        raise NotFound(f"accreditation {accreditation_id} does not exist")
    return row


async def list_accreditations(session: AsyncSession, user_id: uuid.UUID) -> list[Accreditation]:
    return list(
        (
            await session.exec(
                select(Accreditation)
                .where(Accreditation.user_id == user_id)
                .order_by(col(Accreditation.created_at).desc())
                .limit(100)
            )
        ).all()
    )


async def check_reviewable(session: AsyncSession, accreditation_id: uuid.UUID, reviewer_id: uuid.UUID) -> Accreditation:
    row = await get_accreditation(session, accreditation_id)
    if row.user_id == reviewer_id:
        raise OwnAccreditation("You cannot review your own accreditation.")
    if row.status != "pending_review":
        raise AccreditationNotPending(f"The accreditation is {row.status}.")
    return row


async def record_decision(session: AsyncSession, decision: AccreditationDecisionInput) -> Accreditation:
    """Idempotent: a retry after the decision was stored changes nothing."""
    row = await session.get(Accreditation, decision.accreditation_id, with_for_update=True)
    if row is None:
        raise NotFound(f"accreditation {decision.accreditation_id} does not exist")
    if row.status != "pending_review":
        return row
    row.status = decision.status
    row.reason = decision.reason
    row.reviewer_id = decision.reviewer_id
    row.decided_at = decision.decided_at
    row.expires_at = decision.expires_at
    session.add(row)
    await session.flush()
    await _event(session, row, f"profiles.accreditation.{decision.status}")
    await record_audit(
        session,
        actor_id=decision.reviewer_id,
        action=f"profiles.accreditation.{decision.status}",
        entity_type="accreditation",
        entity_id=row.id,
        data={"user_id": str(row.user_id), "reason": decision.reason, "method": row.method},
    )
    return row


async def expire_accreditation(session: AsyncSession, accreditation_id: uuid.UUID) -> Accreditation:
    """Idempotent: only an approved accreditation flips to expired, once, with one event."""
    row = await session.get(Accreditation, accreditation_id, with_for_update=True)
    if row is None:
        raise NotFound(f"accreditation {accreditation_id} does not exist")
    if row.status == "approved":
        row.status = "expired"
        session.add(row)
        await session.flush()
        await _event(session, row, ACCREDITATION_EXPIRED)
    return row


async def pending_accreditations(session: AsyncSession, limit: int = 200) -> list[Accreditation]:
    """Accreditations waiting for a compliance reviewer, oldest first (the review queue)."""
    return list(
        (
            await session.exec(
                select(Accreditation)
                .where(Accreditation.status == "pending_review")
                .order_by(col(Accreditation.created_at))
                .limit(limit)
            )
        ).all()
    )
