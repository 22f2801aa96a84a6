"""KYC use cases: submission, status changes driven by the workflow, provider webhooks, compliance decisions."""

from __future__ import annotations

import uuid

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from events import topics
from events.outbox import record_event
from models.base import utcnow
from models.profiles import KycCheck, KycStatusChange, KycSubmit, KycWebhook, KycWebhookReceipt
from pap.db import insert_unless_conflict, lock_for_transaction
from services.admin import record_audit
from services.errors import Conflict, Forbidden, NotFound
from services.profiles.status import latest_kyc

SOURCE = "/pap/profiles"
FINAL = frozenset({"approved", "rejected"})


class KycInProgress(Conflict):
    type = "kyc-in-progress"
    title = "A KYC check is already in progress or approved"


class OwnKyc(Forbidden):
    type = "own-kyc"
    title = "Reviewers cannot decide on their own KYC"


class KycNotInReview(Conflict):
    type = "kyc-not-in-review"
    title = "This KYC check is not waiting for a compliance decision"


def kyc_workflow_id(user_id: uuid.UUID) -> str:
    return f"kyc-{user_id}"


async def submit_kyc(session: AsyncSession, user_id: uuid.UUID, body: KycSubmit) -> KycCheck:
    """Record a new check as pending; the caller starts `kyc-{user_id}` after commit. Rejected users may retry."""
    await lock_for_transaction(session, f"profiles:kyc:{user_id}")  # a double submit records one check
    current = await latest_kyc(session, user_id)
    if current is not None and current.status in {"pending", "manual_review", "approved"}:
        raise KycInProgress(f"KYC is already {current.status}.", status_now=current.status)
    check = KycCheck(user_id=user_id, status="pending", **body.model_dump())
    session.add(check)
    await session.flush()
    await _event(session, check, "profiles.kyc.submitted")
    return check


async def _event(session: AsyncSession, check: KycCheck, type_: str) -> None:
    await record_event(
        session,
        topic=topics.PROFILES,
        key=str(check.user_id),
        type=type_,
        source=SOURCE,
        subject=str(check.user_id),
        data={"user_id": str(check.user_id), "check_id": str(check.id), "status": check.status, "reason": check.reason},
    )


async def set_kyc_status(session: AsyncSession, change: KycStatusChange) -> KycCheck:
    """Idempotent: a retried activity finds the status already set and emits nothing more; final states stay final."""
    check = await session.get(KycCheck, change.check_id, with_for_update=True)
    if check is None:
        raise NotFound(f"KYC check {change.check_id} does not exist")
    if check.status == change.status or check.status in FINAL:
        return check
    check.status = change.status
    check.reason = change.reason
    if change.status in FINAL:
        check.decided_at = utcnow()
        check.reviewer_id = change.reviewer_id
    session.add(check)
    await session.flush()
    await _event(session, check, f"profiles.kyc.{change.status}")
    await record_audit(
        session,
        actor_id=change.reviewer_id,
        action=f"profiles.kyc.{change.status}",
        entity_type="kyc_check",
        entity_id=check.id,
        data={"user_id": str(check.user_id), "reason": change.reason},
    )
    return check


async def set_provider_ref(session: AsyncSession, check_id: uuid.UUID, provider_ref: str) -> None:
    check = await session.get(KycCheck, check_id, with_for_update=True)
    if check is not None and check.provider_ref != provider_ref:
        check.provider_ref = provider_ref
        session.add(check)


async def claim_webhook(session: AsyncSession, event: KycWebhook) -> KycCheck | None:
    """The check to signal, or None for a replayed event id (acknowledged, no second effect)."""
    claimed = await insert_unless_conflict(
        session,
        KycWebhookReceipt,
        {"event_id": event.event_id, "check_id": event.check_id, "received_at": utcnow()},
        returning="event_id",
    )
    if claimed.first() is None:
        return None
    check = await session.get(KycCheck, event.check_id)
    if check is None:
        raise NotFound(f"KYC check {event.check_id} does not exist")
    return check


async def check_for_review(session: AsyncSession, user_id: uuid.UUID) -> KycCheck:
    check = await latest_kyc(session, user_id)
    if check is None:
        raise NotFound(f"no KYC check for user {user_id}")
    if check.status != "manual_review":
        raise KycNotInReview(f"KYC is {check.status}, not manual_review.")
    return check


async def list_kyc_reviews(session: AsyncSession, limit: int = 50) -> list[KycCheck]:
    return list(
        (
            await session.exec(
                select(KycCheck)
                .where(KycCheck.status == "manual_review")
                .order_by(col(KycCheck.created_at))
                .limit(limit)
            )
        ).all()
    )
