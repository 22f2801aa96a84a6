"""Read-side answers other contexts rely on: KYC status, accreditation status, buyer eligibility."""

from __future__ import annotations

import uuid

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import utcnow
from models.profiles import Accreditation, BuyerEligibility, KycCheck


async def latest_kyc(session: AsyncSession, user_id: uuid.UUID) -> KycCheck | None:
    return (
        await session.exec(
            select(KycCheck).where(KycCheck.user_id == user_id).order_by(col(KycCheck.created_at).desc()).limit(1)
        )
    ).first()


async def kyc_status(session: AsyncSession, user_id: uuid.UUID) -> str:
    """`not_started|pending|approved|rejected|manual_review`: the status of the newest KYC check."""
    check = await latest_kyc(session, user_id)
    return check.status if check else "not_started"


async def accreditation_status(session: AsyncSession, user_id: uuid.UUID) -> str:
    """`none|pending_review|approved|rejected|expired`: an unexpired approval wins, else the newest submission."""
    rows = (
        await session.exec(
            select(Accreditation)
            .where(Accreditation.user_id == user_id)
            .order_by(col(Accreditation.created_at).desc())
            .limit(20)
        )
    ).all()
    if not rows:
        return "none"
    now = utcnow()
    if any(r.status == "approved" and (r.expires_at is None or r.expires_at > now) for r in rows):
        return "approved"
    newest = rows[0]
    if newest.status == "approved":  # past its expiry, the timer just has not fired yet
        return "expired"
    return newest.status


async def buyer_eligibility(session: AsyncSession, user_id: uuid.UUID) -> BuyerEligibility:
    """A buyer needs approved KYC and an unexpired accreditation; `reasons` says what is missing."""
    kyc = await kyc_status(session, user_id)
    accreditation = await accreditation_status(session, user_id)
    reasons: list[str] = []
    if kyc != "approved":
        reasons.append(f"kyc_{kyc}")
    if accreditation != "approved":
        reasons.append(f"accreditation_{accreditation}")
    return BuyerEligibility(kyc_status=kyc, accreditation_status=accreditation, eligible=not reasons, reasons=reasons)
