"""TOTP multi-factor authentication: enrolment, verification with replay protection, recovery codes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from datetime import timedelta

import pyotp
from redis.asyncio import Redis
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import utcnow
from models.identity import AuthSession, RecoveryCode, TotpEnrolment, User
from services.errors import Conflict, Forbidden, InvalidInput
from services.identity import trail
from services.identity.throttling import reserve_login_attempt, settle_login_attempt
from services.identity.users import get_user

ISSUER_NAME = "Private Assets Platform"
RECOVERY_CODE_COUNT = 10
TOTP_WINDOW = 1  # accept the previous and next 30 s step for clock drift


RECENT_SIGN_IN = timedelta(minutes=15)
"""Enrolling a second factor needs a password sign-in this recent: a stolen token (or an old
browser session) must not be able to bind the attacker's authenticator to the account."""


class ReauthenticationRequired(Forbidden):
    type = "reauthentication-required"
    title = "Sign in again to change your second factor"


class MfaAlreadyEnabled(Conflict):
    type = "mfa-already-enabled"
    title = "MFA is already enabled"


class MfaNotStarted(Conflict):
    type = "mfa-not-started"
    title = "Start TOTP enrolment first"


class InvalidOtp(InvalidInput):
    type = "invalid-otp"
    title = "The one-time code is not valid"


def _hash_code(code: str) -> str:
    return hashlib.sha256(code.strip().lower().replace("-", "").encode()).hexdigest()


def _new_recovery_code() -> str:
    raw = secrets.token_hex(5)
    return f"{raw[:5]}-{raw[5:]}"


async def start_totp(session: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID | None) -> TotpEnrolment:
    """A fresh secret, stored as pending until a first code proves the authenticator has it.

    Only from a session whose password sign-in is recent (`RECENT_SIGN_IN`).
    """
    await _require_recent_sign_in(session, session_id)
    user = await get_user(session, user_id, for_update=True)
    if user.mfa_enabled:
        raise MfaAlreadyEnabled("TOTP is already enrolled for this account.")
    secret = pyotp.random_base32()
    user.totp_secret = secret
    user.totp_last_step = None
    session.add(user)
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER_NAME)
    return TotpEnrolment(secret=secret, otpauth_uri=uri)


async def _require_recent_sign_in(session: AsyncSession, session_id: uuid.UUID | None) -> None:
    """Tokens without a session (the seed's, the benchmarks') carry none to check."""
    if session_id is not None:
        auth_session = await session.get(AuthSession, session_id)
        if auth_session is None or auth_session.created_at < utcnow() - RECENT_SIGN_IN:
            raise ReauthenticationRequired(
                "Sign in with your password again (within the last 15 minutes) before enrolling an authenticator."
            )


def _matching_step(secret: str, code: str, now: float) -> int | None:
    """The time step whose code equals `code` (within the drift window), compared in constant time."""
    totp = pyotp.TOTP(secret)
    current = int(now // totp.interval)
    found: int | None = None
    for step in range(current - TOTP_WINDOW, current + TOTP_WINDOW + 1):
        if hmac.compare_digest(totp.at(step * totp.interval), code):
            found = step
    return found


def is_totp_code(code: str) -> bool:
    """Six ASCII digits (`str.isdigit` alone also accepts other scripts' digits, which TOTP never produces)."""
    return len(code) == 6 and code.isascii() and code.isdigit()


def consume_totp(user: User, code: str, *, now: float | None = None) -> bool:
    """Accept a code once: its step must be newer than the last accepted one (caller holds the row lock)."""
    if user.totp_secret is None or not is_totp_code(code):
        return False
    step = _matching_step(user.totp_secret, code, time.time() if now is None else now)
    if step is None or (user.totp_last_step is not None and step <= user.totp_last_step):
        return False
    user.totp_last_step = step
    return True


async def confirm_totp(
    session: AsyncSession, redis: Redis, *, user_id: uuid.UUID, session_id: uuid.UUID | None, ip: str, code: str
) -> list[str]:
    """Enable MFA after a valid first code; returns the one-time recovery codes (shown once, stored hashed).

    Like starting, only from a recent sign-in; wrong codes count as failed sign-ins (5 per account in
    15 minutes), so an old or stolen session cannot guess its way to a pending secret's code.
    """
    await _require_recent_sign_in(session, session_id)
    user = await get_user(session, user_id, for_update=True)
    if user.mfa_enabled:
        raise MfaAlreadyEnabled("TOTP is already enrolled for this account.")
    if user.totp_secret is None:
        raise MfaNotStarted("Call POST /v1/auth/mfa/totp first.")
    await reserve_login_attempt(redis, email=user.email, ip=ip)
    right = consume_totp(user, code)
    await settle_login_attempt(redis, email=user.email, ip=ip, result="undecided" if right else "failed")
    if not right:
        raise InvalidOtp(
            "The code does not match.",
            errors=[{"pointer": "/code", "field": "code", "detail": "does not match", "code": "invalid_otp"}],
        )
    user.mfa_enabled = True
    user.mfa_enabled_at = utcnow()
    session.add(user)
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    for code_ in codes:
        session.add(RecoveryCode(user_id=user.id, code_hash=_hash_code(code_)))
    await session.flush()
    await trail.security_event(
        session, trail.MFA_ENROLLED, actor_id=user.id, entity_type="user", entity_id=user.id, data={"method": "totp"}
    )
    return codes


async def consume_recovery_code(session: AsyncSession, user: User, code: str) -> bool:
    """Spend one unused recovery code (looked up by its hash, so no timing leak)."""
    row = (
        await session.exec(
            select(RecoveryCode)
            .where(RecoveryCode.user_id == user.id, RecoveryCode.code_hash == _hash_code(code))
            .with_for_update()
        )
    ).first()
    if row is None or row.used_at is not None:
        return False
    row.used_at = utcnow()
    session.add(row)
    return True


async def verify_second_factor(session: AsyncSession, user: User, otp: str) -> bool:
    """A TOTP code (once per step) or an unused recovery code; `user` must be locked FOR UPDATE."""
    otp = otp.strip()
    if is_totp_code(otp):
        ok = consume_totp(user, otp)
        session.add(user)
        return ok
    return await consume_recovery_code(session, user, otp)
