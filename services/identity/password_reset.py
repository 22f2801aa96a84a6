"""Resetting a forgotten password: a one-time emailed link, valid 30 minutes, that ends every session.

The request always gets the same answer, so it never tells whether an account
exists. The link's token is minted by the notifications consumer when it sends
the email (`KeyRing.issue_password_reset`): it names the reset row, which
works once; using any link spends every open one of the account.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import text, update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import utcnow
from models.identity import PasswordReset
from services.errors import InvalidInput, Unauthenticated
from services.identity import trail
from services.identity.passwords import check_policy, hash_password
from services.identity.sessions import revoke_all_sessions
from services.identity.throttling import forgive_login_failures, take_reset_slot
from services.identity.tokens import KeyRing
from services.identity.users import find_by_email, get_user, normalise_email

RESET_TTL = timedelta(minutes=30)


class ResetLinkInvalid(InvalidInput):
    type = "reset-link-invalid"
    title = "The reset link is not valid"


async def request_password_reset(session: AsyncSession, redis: Redis, *, email: str, ip: str) -> None:
    """Record a reset for the account using `email`, if there is one (its link goes out by email)."""
    address = normalise_email(email)
    if not await take_reset_slot(redis, email=address, ip=ip):
        return
    user = await find_by_email(session, address)
    if user is None:
        return
    now = utcnow()
    reset = PasswordReset(user_id=user.id, requested_ip=ip, created_at=now, expires_at=now + RESET_TTL)
    session.add(reset)
    await session.flush()
    await trail.security_event(
        session,
        trail.PASSWORD_RESET_REQUESTED,
        actor_id=None,
        entity_type="user",
        entity_id=user.id,
        data={
            "user_id": str(user.id),
            "reset_id": str(reset.id),
            "expires_at": reset.expires_at.isoformat(),
            "ip": ip,
        },
    )


async def reset_password(
    session: AsyncSession, redis: Redis, keyring: KeyRing, *, token: str, new_password: str
) -> uuid.UUID:
    """Set a new password through a reset link: spends the account's open links, ends every session and
    forgives earlier failed sign-ins. Returns the user's id."""
    try:
        reset_id, user_id = keyring.verify_password_reset(token)
    except Unauthenticated as error:
        raise _invalid() from error
    reset = await session.get(PasswordReset, reset_id, with_for_update=True)
    if reset is None or reset.user_id != user_id or reset.used_at is not None or reset.expires_at <= utcnow():
        raise _invalid()
    user = await get_user(session, user_id, for_update=True)
    check_policy(new_password, email=user.email, field="new_password")
    user.password_hash = await hash_password(new_password)
    session.add(user)
    await spend_open_resets(session, user.id)
    ended = await revoke_all_sessions(session, redis, user_id=user.id, actor_id=user.id, reason="password_reset")
    await forgive_login_failures(redis, email=user.email)
    await trail.security_event(
        session,
        trail.PASSWORD_RESET,
        actor_id=user.id,
        entity_type="user",
        entity_id=user.id,
        data={"user_id": str(user.id), "sessions_ended": ended},
    )
    return user.id


async def spend_open_resets(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Every reset link of the user stops working (its password has just been set)."""
    await session.execute(
        update(PasswordReset)
        .where(col(PasswordReset.user_id) == user_id, col(PasswordReset.used_at).is_(None))
        .values(used_at=utcnow())
    )


_EXPIRED_RESETS = text(
    """
    DELETE FROM identity.password_reset WHERE ctid IN (
        SELECT ctid FROM identity.password_reset WHERE expires_at < :before LIMIT :limit
    )
    """
)


async def prune_password_resets(session: AsyncSession, *, before: datetime, limit: int) -> int:
    """Resets whose links expired before `before` (the audit trail keeps who asked and when)."""
    result = await session.execute(_EXPIRED_RESETS, {"before": before, "limit": limit})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]  # a DELETE gives a CursorResult


def _invalid() -> ResetLinkInvalid:
    return ResetLinkInvalid(
        "This reset link is invalid, expired or already used: ask for a new one.",
        errors=[{"pointer": "/token", "field": "token", "detail": "invalid, expired or used", "code": "invalid"}],
    )
