"""The investor profile (individual or entity with KYB details)."""

from __future__ import annotations

import uuid

from sqlmodel.ext.asyncio.session import AsyncSession

from events import topics
from events.outbox import record_event
from models.base import utcnow
from models.profiles import Profile, ProfileRead, ProfileUpdate
from services.profiles.status import accreditation_status, kyc_status

SOURCE = "/pap/profiles"


async def get_profile(session: AsyncSession, user_id: uuid.UUID) -> ProfileRead:
    """The saved profile, or an empty one with the statuses (every user has a profile to fill in)."""
    profile = await session.get(Profile, user_id)
    statuses = {
        "kyc_status": await kyc_status(session, user_id),
        "accreditation_status": await accreditation_status(session, user_id),
    }
    if profile is None:
        return ProfileRead(user_id=user_id, **statuses)
    return ProfileRead.model_validate({**profile.model_dump(), **statuses})


async def put_profile(session: AsyncSession, user_id: uuid.UUID, body: ProfileUpdate) -> ProfileRead:
    profile = await session.get(Profile, user_id, with_for_update=True)
    values = body.model_dump(mode="json")
    if profile is None:
        profile = Profile(user_id=user_id, **values)
    else:
        for name, value in values.items():
            setattr(profile, name, value)
        profile.updated_at = utcnow()
    session.add(profile)
    await session.flush()
    await record_event(
        session,
        topic=topics.PROFILES,
        key=str(user_id),
        type="profiles.profile.updated",
        source=SOURCE,
        subject=str(user_id),
        data={"user_id": str(user_id), "kind": profile.kind, "residence_country": profile.residence_country},
    )
    return await get_profile(session, user_id)
