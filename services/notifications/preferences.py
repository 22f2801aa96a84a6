"""Notification preferences per category and channel; security notices by email and in-app cannot be turned off."""

from __future__ import annotations

import uuid

from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import utcnow
from models.notifications import Category, Channel, Preference, Preferences, PreferencesUpdate
from services.errors import InvalidInput
from services.profiles import get_profile

LOCKED: frozenset[tuple[Category, Channel]] = frozenset(
    {(Category.SECURITY, Channel.EMAIL), (Category.SECURITY, Channel.IN_APP)}
)
"""Security notices reach the user whatever they choose: an attacker must not be able to silence them."""

DEFAULTS: dict[Channel, bool] = {Channel.EMAIL: True, Channel.IN_APP: True, Channel.SMS: False}
SMS_DEFAULT_ON: frozenset[Category] = frozenset({Category.SECURITY})


class SecurityNoticesLocked(InvalidInput):
    type = "security-notices-locked"
    title = "Security notices cannot be turned off"


def default_enabled(category: Category, channel: Channel) -> bool:
    if channel is Channel.SMS:
        return category in SMS_DEFAULT_ON
    return DEFAULTS[channel]


async def effective_preferences(session: AsyncSession, user_id: uuid.UUID) -> dict[Category, dict[Channel, bool]]:
    """Every category and channel, explicit choices over defaults, locked pairs always on."""
    chosen = {
        (p.category, p.channel): p.enabled
        for p in (await session.exec(select(Preference).where(col(Preference.user_id) == user_id))).all()
    }
    return {
        category: {
            channel: (category, channel) in LOCKED
            or chosen.get((category.value, channel.value), default_enabled(category, channel))
            for channel in Channel
        }
        for category in Category
    }


async def sms_phone(session: AsyncSession, user_id: uuid.UUID) -> str | None:
    """The phone number of the user's profile (profiles context), if any."""
    return (await get_profile(session, user_id)).phone


async def get_preferences(session: AsyncSession, user_id: uuid.UUID) -> Preferences:
    return Preferences(
        preferences=await effective_preferences(session, user_id),
        locked=sorted(f"{c.value}.{ch.value}" for c, ch in LOCKED),
        sms_phone=await sms_phone(session, user_id),
    )


async def put_preferences(session: AsyncSession, user_id: uuid.UUID, body: PreferencesUpdate) -> Preferences:
    """Apply the choices sent; disabling a locked pair is a 422 and changes nothing."""
    errors = [
        {
            "pointer": f"/preferences/{c.value}/{ch.value}",
            "field": f"{c.value}.{ch.value}",
            "detail": "security notices cannot be turned off",
        }
        for c, channels in body.preferences.items()
        for ch, enabled in channels.items()
        if not enabled and (c, ch) in LOCKED
    ]
    if errors:
        raise SecurityNoticesLocked("Security notices by email and in-app stay on.", errors=errors)
    for category, channels in body.preferences.items():
        for channel, enabled in channels.items():
            values = {
                "user_id": user_id,
                "category": category.value,
                "channel": channel.value,
                "enabled": enabled,
                "updated_at": utcnow(),
            }
            await session.execute(
                insert(Preference)
                .values(**values)
                .on_conflict_do_update(
                    index_elements=["user_id", "category", "channel"],
                    set_={"enabled": enabled, "updated_at": values["updated_at"]},
                )
            )
    return await get_preferences(session, user_id)
