"""Changing one's password: proven by the current one, and it signs out every other session."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis
from sqlmodel.ext.asyncio.session import AsyncSession

from services.errors import InvalidInput
from services.identity import trail
from services.identity.password_reset import spend_open_resets
from services.identity.passwords import check_policy, hash_password, verify_password
from services.identity.sessions import end_other_sessions
from services.identity.throttling import reserve_login_attempt, settle_login_attempt
from services.identity.users import get_user


class WrongCurrentPassword(InvalidInput):
    type = "wrong-current-password"
    title = "The current password is not right"


class SamePassword(InvalidInput):
    type = "same-password"
    title = "The new password is the current one"


async def change_password(
    session: AsyncSession,
    redis: Redis,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID | None,
    ip: str,
    current_password: str,
    new_password: str,
) -> int:
    """Replace the password and end the user's other sessions (whoever knew the old password is signed
    out; this one stays). Guesses at the current password are throttled like sign-ins. Returns how many
    sessions ended."""
    user = await get_user(session, user_id, for_update=True)
    await reserve_login_attempt(redis, email=user.email, ip=ip)
    right = await verify_password(user.password_hash, current_password)
    await settle_login_attempt(redis, email=user.email, ip=ip, result="undecided" if right else "failed")
    if not right:
        raise WrongCurrentPassword(
            "The current password is not right.",
            errors=[_field("current_password", "does not match", "wrong_password")],
        )
    check_policy(new_password, email=user.email, field="new_password")
    if await verify_password(user.password_hash, new_password):
        raise SamePassword("Choose a password you are not using now.", errors=[_field("new_password", "unchanged")])
    user.password_hash = await hash_password(new_password)
    session.add(user)
    await spend_open_resets(session, user.id)
    ended = await end_other_sessions(session, redis, user_id=user.id, keep=session_id, reason="password_changed")
    await trail.security_event(
        session,
        trail.PASSWORD_CHANGED,
        actor_id=user.id,
        entity_type="user",
        entity_id=user.id,
        data={"user_id": str(user.id), "sessions_ended": ended},
    )
    return ended


def _field(name: str, detail: str, code: str = "invalid") -> dict[str, str]:
    return {"pointer": f"/{name}", "field": name, "detail": detail, "code": code}
