"""Sign-in sessions: password login, refresh-token rotation with reuse detection, revocation.

Postgres is the record of sessions; Redis holds revoked session ids so every
request can check revocation without a database round trip.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import update
from sqlmodel import and_, col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import utcnow
from models.identity import AuthSession, RefreshToken, SessionRead, User
from services.errors import DomainError, NotFound, Unauthenticated
from services.identity import trail
from services.identity.mfa import verify_second_factor
from services.identity.passwords import hash_password, needs_rehash, verify_password
from services.identity.permissions import Role
from services.identity.tokens import ACCESS_TOKEN_TTL_SECONDS, KeyRing, Principal
from services.identity.users import find_by_email, get_user, set_roles

REFRESH_TOKEN_TTL = timedelta(days=30)
REVOKED_SESSION_KEY = "pap:identity:revoked-session:{}"
REVOCATION_TTL_SECONDS = ACCESS_TOKEN_TTL_SECONDS + 300
"""Revocation marks outlive every access token of the session."""


class InvalidCredentials(Unauthenticated):
    type = "invalid-credentials"
    title = "Invalid credentials"


class MfaRequired(Unauthenticated):
    type = "mfa-required"
    title = "A one-time code is required"

    user_id: uuid.UUID | None = None
    """Whose password was right (never rendered): the web login's challenge names them."""


class InvalidRefreshToken(Unauthenticated):
    type = "invalid-refresh-token"
    title = "The refresh token is not valid"


class RefreshTokenReused(Unauthenticated):
    type = "refresh-token-reused"
    title = "Refresh token reuse detected"


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: uuid.UUID
    user_id: uuid.UUID


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _new_refresh_token(session: AsyncSession, auth_session: AuthSession) -> str:
    token = secrets.token_urlsafe(32)
    session.add(
        RefreshToken(
            session_id=auth_session.id,
            token_hash=_hash_token(token),
            expires_at=utcnow() + REFRESH_TOKEN_TTL,
        )
    )
    await session.flush()
    return token


def _access_token(keyring: KeyRing, user: User, auth_session: AuthSession) -> str:
    principal = Principal(
        user_id=user.id,
        roles=frozenset(Role(r) for r in user.roles),
        session_id=auth_session.id,
        company_id=user.company_id,
        mfa=auth_session.mfa,
    )
    return keyring.issue(principal)


async def _issue(session: AsyncSession, keyring: KeyRing, user: User, auth_session: AuthSession) -> IssuedTokens:
    refresh = await _new_refresh_token(session, auth_session)
    return IssuedTokens(
        access_token=_access_token(keyring, user, auth_session),
        refresh_token=refresh,
        expires_in=ACCESS_TOKEN_TTL_SECONDS,
        session_id=auth_session.id,
        user_id=user.id,
    )


async def password_login(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    email: str,
    password: str,
    otp: str | None,
    ip: str | None,
    user_agent: str | None,
) -> IssuedTokens | DomainError:
    """Tokens, or the error to answer; failures are audited in this transaction, so the caller commits then raises."""
    user = await find_by_email(session, email, for_update=True)
    if not await verify_password(user.password_hash if user else None, password) or user is None:
        await trail.security_event(
            session,
            trail.LOGIN_FAILED,
            actor_id=None,
            entity_type="user",
            entity_id=user.id if user else None,
            data={"reason": "bad_password" if user else "unknown_email", "ip": ip},
        )
        return InvalidCredentials("The email or password is wrong.")
    if needs_rehash(user.password_hash):
        user.password_hash = await hash_password(password)
        session.add(user)
    if user.mfa_enabled:
        if not otp:
            required = MfaRequired("This account uses MFA: send the one-time code as `otp`.")
            required.user_id = user.id
            return required
        if not await _second_factor_ok(session, user, otp, ip):
            return InvalidCredentials("The one-time code is wrong or was already used.")
    return await _open_session(session, keyring, user, ip, user_agent)


async def mfa_login(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    user_id: uuid.UUID,
    otp: str,
    ip: str | None,
    user_agent: str | None,
) -> IssuedTokens | DomainError:
    """The second step of a web login: `user_id` gave the right password (a verified challenge), now the code."""
    user = await session.get(User, user_id, with_for_update=True)
    if user is None or not user.mfa_enabled or not await _second_factor_ok(session, user, otp, ip):
        return InvalidCredentials("The one-time code is wrong or was already used.")
    return await _open_session(session, keyring, user, ip, user_agent)


async def _second_factor_ok(session: AsyncSession, user: User, otp: str, ip: str | None) -> bool:
    if await verify_second_factor(session, user, otp):
        return True
    await trail.security_event(
        session,
        trail.LOGIN_FAILED,
        actor_id=None,
        entity_type="user",
        entity_id=user.id,
        data={"reason": "bad_otp", "ip": ip},
    )
    return False


async def _open_session(
    session: AsyncSession, keyring: KeyRing, user: User, ip: str | None, user_agent: str | None
) -> IssuedTokens:
    auth_session = AuthSession(
        user_id=user.id,
        mfa=user.mfa_enabled,
        user_agent=(user_agent or "")[:512] or None,
        ip=ip,
    )
    session.add(auth_session)
    await session.flush()
    await trail.security_event(
        session,
        trail.LOGIN_SUCCEEDED,
        actor_id=user.id,
        entity_type="session",
        entity_id=auth_session.id,
        data={"user_id": str(user.id), "mfa": auth_session.mfa, "ip": ip},
    )
    return await _issue(session, keyring, user, auth_session)


async def mark_revoked(redis: Redis, session_id: uuid.UUID) -> None:
    await redis.set(REVOKED_SESSION_KEY.format(session_id), "1", ex=REVOCATION_TTL_SECONDS)


async def end_session(
    session: AsyncSession,
    redis: Redis,
    auth_session: AuthSession,
    *,
    reason: str,
    actor_id: uuid.UUID | None,
) -> None:
    """End a session: its refresh tokens stop working and its access tokens are refused at once."""
    if auth_session.revoked_at is None:
        auth_session.revoked_at = utcnow()
        auth_session.revoked_reason = reason
        session.add(auth_session)
        await session.flush()
        await trail.security_event(
            session,
            trail.SESSION_REVOKED,
            actor_id=actor_id,
            entity_type="session",
            entity_id=auth_session.id,
            data={"user_id": str(auth_session.user_id), "reason": reason},
        )
    await mark_revoked(redis, auth_session.id)


async def end_other_sessions(
    session: AsyncSession, redis: Redis, *, user_id: uuid.UUID, keep: uuid.UUID | None, reason: str
) -> int:
    """End every live session of `user_id` but `keep` (the caller's own); returns how many ended."""
    query = select(AuthSession).where(AuthSession.user_id == user_id, col(AuthSession.revoked_at).is_(None))
    if keep is not None:
        query = query.where(AuthSession.id != keep)
    others = (await session.exec(query.with_for_update())).all()
    for other in others:
        await end_session(session, redis, other, reason=reason, actor_id=user_id)
    return len(others)


async def refresh(
    session: AsyncSession, redis: Redis, keyring: KeyRing, *, refresh_token: str
) -> IssuedTokens | DomainError:
    """Rotate: the presented token is spent and a new pair issued; a spent token revokes the whole family."""
    row = (
        await session.exec(
            select(RefreshToken).where(RefreshToken.token_hash == _hash_token(refresh_token)).with_for_update()
        )
    ).first()
    if row is None:
        return InvalidRefreshToken("Unknown refresh token.")
    auth_session = await session.get(AuthSession, row.session_id, with_for_update=True)
    assert auth_session is not None
    if row.rotated_at is not None:
        await trail.security_event(
            session,
            trail.REFRESH_REUSE_DETECTED,
            actor_id=None,
            entity_type="session",
            entity_id=auth_session.id,
            data={"user_id": str(auth_session.user_id), "refresh_token_id": str(row.id)},
        )
        await end_session(session, redis, auth_session, reason="refresh_token_reuse", actor_id=None)
        return RefreshTokenReused("This refresh token was already used; the session has been revoked.")
    if auth_session.revoked_at is not None:
        return InvalidRefreshToken("The session has ended.")
    if row.expires_at <= utcnow():
        return InvalidRefreshToken("The refresh token has expired.")
    row.rotated_at = utcnow()
    session.add(row)
    auth_session.last_seen_at = utcnow()
    session.add(auth_session)
    user = await get_user(session, auth_session.user_id)
    return await _issue(session, keyring, user, auth_session)


async def upgrade_to_mfa(
    session: AsyncSession, redis: Redis, keyring: KeyRing, *, user_id: uuid.UUID, session_id: uuid.UUID | None
) -> IssuedTokens | None:
    """After TOTP enrolment the current session has proven both factors: mark it and issue MFA tokens.

    The user's other sessions proved the password only, so they end: whoever else holds one must sign
    in again with a code. The session's earlier refresh tokens are spent here, so only the new one
    carries the session on (an old one would otherwise fork it, and presenting it now counts as reuse).
    """
    await end_other_sessions(session, redis, user_id=user_id, keep=session_id, reason="mfa_enabled")
    if session_id is None:
        return None
    # The session's refresh tokens are locked before the session row, in the order `refresh` takes them:
    # the other order deadlocks with a refresh of this session running at the same moment.
    await session.exec(select(RefreshToken.id).where(RefreshToken.session_id == session_id).with_for_update())
    auth_session = await session.get(AuthSession, session_id, with_for_update=True)
    if auth_session is None or auth_session.revoked_at is not None:
        return None
    auth_session.mfa = True
    session.add(auth_session)
    await session.execute(
        update(RefreshToken)
        .where(col(RefreshToken.session_id) == auth_session.id, col(RefreshToken.rotated_at).is_(None))
        .values(rotated_at=utcnow())
    )
    user = await get_user(session, auth_session.user_id)
    return await _issue(session, keyring, user, auth_session)


async def revoke_session(
    session: AsyncSession, redis: Redis, *, user_id: uuid.UUID, session_id: uuid.UUID, reason: str = "user"
) -> None:
    """End one of the caller's own sessions (another user's looks like it does not exist)."""
    auth_session = await session.get(AuthSession, session_id, with_for_update=True)
    if auth_session is None or auth_session.user_id != user_id:
        raise NotFound(f"session {session_id} does not exist")
    await end_session(session, redis, auth_session, reason=reason, actor_id=user_id)


async def list_sessions(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    current: uuid.UUID | None,
    limit: int = 100,
    after: tuple[datetime, uuid.UUID] | None = None,
) -> list[SessionRead]:
    """The user's live sessions, newest first (`after`: the created_at and id a previous page ended with)."""
    query = (
        select(AuthSession)
        .where(AuthSession.user_id == user_id, col(AuthSession.revoked_at).is_(None))
        .order_by(col(AuthSession.created_at).desc(), col(AuthSession.id).desc())
        .limit(limit)
    )
    if after is not None:
        created_at, session_id = after
        query = query.where(
            or_(
                col(AuthSession.created_at) < created_at,
                and_(col(AuthSession.created_at) == created_at, col(AuthSession.id) < session_id),
            )
        )
    rows = (await session.exec(query)).all()
    return [
        SessionRead(
            id=s.id,
            user_agent=s.user_agent,
            ip=s.ip,
            mfa=s.mfa,
            created_at=s.created_at,
            last_seen_at=s.last_seen_at,
            current=s.id == current,
        )
        for s in rows
    ]


async def revoke_all_sessions(
    session: AsyncSession, redis: Redis, *, user_id: uuid.UUID, actor_id: uuid.UUID | None, reason: str
) -> int:
    """End every live session of `user_id` (e.g. a compliance freeze); returns how many were ended."""
    rows = (
        await session.exec(
            select(AuthSession)
            .where(AuthSession.user_id == user_id, col(AuthSession.revoked_at).is_(None))
            .with_for_update()
        )
    ).all()
    for auth_session in rows:
        await end_session(session, redis, auth_session, reason=reason, actor_id=actor_id)
    return len(rows)


async def change_roles(
    session: AsyncSession,
    redis: Redis,
    *,
    actor_id: uuid.UUID,
    user_id: uuid.UUID,
    roles: list[Role],
    company_id: uuid.UUID | None,
) -> User:
    """Replace a user's roles. Losing a role or a company ends every session of theirs at once:
    an access token carries its roles for its lifetime, and a refresh would keep them coming."""
    before = await get_user(session, user_id)
    had_roles, had_company = set(before.roles), before.company_id
    user = await set_roles(session, actor_id=actor_id, user_id=user_id, roles=roles, company_id=company_id)
    if had_roles - set(user.roles) or (had_company is not None and had_company != user.company_id):
        await revoke_all_sessions(session, redis, user_id=user.id, actor_id=actor_id, reason="roles_changed")
    return user
