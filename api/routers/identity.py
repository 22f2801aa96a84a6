"""`/v1/auth/*`, `/v1/me` and the JWKS: registration, sign-in, sessions, MFA."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request, Response, status

from api.auth import CurrentUser
from api.deps import RedisDep, SessionDep, SessionsDep, SettingsDep, StateDep
from models.identity import (
    MeRead,
    PasswordChange,
    PasswordResetAccepted,
    PasswordResetConfirm,
    PasswordResetRequest,
    RefreshRequest,
    RegisterRequest,
    SessionList,
    TokenResponse,
    TotpEnrolment,
    TotpVerified,
    TotpVerifyRequest,
    UserRead,
)
from pap.db import transaction
from services import identity, profiles
from services.errors import DomainError, InvalidInput
from services.identity.sessions import InvalidCredentials, IssuedTokens
from services.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor

router = APIRouter(tags=["identity"])

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _tokens(issued: IssuedTokens, response: Response) -> TokenResponse:
    response.headers.update(NO_STORE)
    return TokenResponse(
        access_token=issued.access_token, refresh_token=issued.refresh_token, expires_in=issued.expires_in
    )


@router.get("/.well-known/jwks.json", tags=["identity"])
async def jwks(state: StateDep) -> dict[str, Any]:
    """The public keys that verify our access tokens (every key of the ring, newest last)."""
    return state.keyring.jwks()


@router.post("/v1/auth/register", status_code=status.HTTP_201_CREATED)
async def register(
    body: RegisterRequest, request: Request, session: SessionDep, redis: RedisDep, settings: SettingsDep
) -> UserRead:
    """New users are investors. An email already registered gets the same 201 shape and nothing is created.
    Each client address may try a limited number of sign-ups an hour (429 past it)."""
    per_hour = settings.registrations_per_address_per_hour
    await identity.take_registration_slot(redis, ip=_client_ip(request), per_hour=per_hour)
    return await identity.register(session, email=body.email, password=body.password, full_name=body.full_name)


class UnsupportedGrant(InvalidInput):
    type = "unsupported-grant-type"
    title = "Only the password grant is supported here"


@router.post("/v1/auth/token")
async def token(
    request: Request,
    response: Response,
    sessions: SessionsDep,
    state: StateDep,
    redis: RedisDep,
    username: Annotated[str, Form(min_length=1, max_length=320)],
    password: Annotated[str, Form(min_length=1, max_length=1024)],
    otp: Annotated[str | None, Form(max_length=32)] = None,
    grant_type: Annotated[str | None, Form(max_length=32)] = None,
) -> TokenResponse:
    """OAuth2 password grant. Unknown email and wrong password are the same 401; failures are throttled."""
    if grant_type not in (None, "password"):
        raise UnsupportedGrant("grant_type must be 'password'.")
    email = username.strip().lower()
    ip = _client_ip(request)
    await identity.reserve_login_attempt(redis, email=email, ip=ip)
    async with transaction(sessions) as session:
        outcome = await identity.password_login(
            session,
            state.keyring,
            email=email,
            password=password,
            otp=otp or None,
            ip=ip,
            user_agent=request.headers.get("user-agent"),
        )
    if isinstance(outcome, DomainError):
        failed = isinstance(outcome, InvalidCredentials)
        await identity.settle_login_attempt(redis, email=email, ip=ip, result="failed" if failed else "undecided")
        raise outcome
    await identity.settle_login_attempt(redis, email=email, ip=ip, result="signed_in")
    return _tokens(outcome, response)


@router.post("/v1/auth/refresh")
async def refresh(body: RefreshRequest, response: Response, sessions: SessionsDep, state: StateDep) -> TokenResponse:
    """Rotate the refresh token; presenting a spent one revokes the whole session (401)."""
    async with transaction(sessions) as session:
        outcome = await identity.refresh(
            session, state.resources.redis, state.keyring, refresh_token=body.refresh_token
        )
    if isinstance(outcome, DomainError):
        raise outcome
    return _tokens(outcome, response)


@router.post("/v1/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(principal: CurrentUser, session: SessionDep, redis: RedisDep) -> Response:
    if principal.session_id is not None:
        await identity.revoke_session(
            session, redis, user_id=principal.user_id, session_id=principal.session_id, reason="logout"
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/v1/auth/sessions")
async def list_sessions(
    principal: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> SessionList:
    rows = await identity.list_sessions(
        session,
        user_id=principal.user_id,
        current=principal.session_id,
        limit=limit + 1,
        after=decode_cursor(cursor) if cursor else None,
    )
    page = rows[:limit]
    more = len(rows) > limit
    return SessionList(items=page, next_cursor=encode_cursor(page[-1].created_at, page[-1].id) if more else None)


@router.delete("/v1/auth/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_session(
    session_id: uuid.UUID, principal: CurrentUser, session: SessionDep, redis: RedisDep
) -> Response:
    await identity.revoke_session(session, redis, user_id=principal.user_id, session_id=session_id, reason="user")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/v1/auth/password", status_code=status.HTTP_204_NO_CONTENT)
async def change_password(
    body: PasswordChange, request: Request, principal: CurrentUser, sessions: SessionsDep, redis: RedisDep
) -> Response:
    """Proven by the current password (throttled like sign-in); every other session of the user ends."""
    async with transaction(sessions) as session:
        await identity.change_password(
            session,
            redis,
            user_id=principal.user_id,
            session_id=principal.session_id,
            ip=_client_ip(request),
            current_password=body.current_password,
            new_password=body.new_password,
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/v1/auth/password-reset", status_code=status.HTTP_202_ACCEPTED)
async def request_password_reset(
    body: PasswordResetRequest, request: Request, session: SessionDep, redis: RedisDep
) -> PasswordResetAccepted:
    """Email a one-time link (30 minutes) to the account using this email, if any: the answer is the same
    either way. An account gets at most 3 links an hour; an address asking too often gets 429."""
    await identity.request_password_reset(session, redis, email=body.email, ip=_client_ip(request))
    return PasswordResetAccepted()


@router.post("/v1/auth/password-reset/confirm", status_code=status.HTTP_204_NO_CONTENT)
async def confirm_password_reset(
    body: PasswordResetConfirm, sessions: SessionsDep, redis: RedisDep, state: StateDep
) -> Response:
    """Set a new password with the emailed link's token: every link of the account is spent, every session
    ends, earlier failed sign-ins are forgiven. An invalid, expired or used token is 422 `reset-link-invalid`."""
    async with transaction(sessions) as session:
        await identity.reset_password(session, redis, state.keyring, token=body.token, new_password=body.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/v1/auth/mfa/totp")
async def start_totp(principal: CurrentUser, session: SessionDep, response: Response) -> TotpEnrolment:
    response.headers.update(NO_STORE)
    return await identity.start_totp(session, principal.user_id, principal.session_id)


@router.post("/v1/auth/mfa/totp/verify")
async def verify_totp(
    body: TotpVerifyRequest,
    request: Request,
    principal: CurrentUser,
    session: SessionDep,
    redis: RedisDep,
    state: StateDep,
    response: Response,
) -> TotpVerified:
    """Enable MFA; returns recovery codes and tokens of the current session, now carrying `mfa: true`.
    The user's other sessions (signed in with the password alone) end."""
    codes = await identity.confirm_totp(
        session,
        redis,
        user_id=principal.user_id,
        session_id=principal.session_id,
        ip=_client_ip(request),
        code=body.code,
    )
    upgraded = await identity.upgrade_to_mfa(
        session, redis, state.keyring, user_id=principal.user_id, session_id=principal.session_id
    )
    response.headers.update(NO_STORE)
    if upgraded is None:
        return TotpVerified(recovery_codes=codes)
    return TotpVerified(
        recovery_codes=codes,
        access_token=upgraded.access_token,
        refresh_token=upgraded.refresh_token,
        expires_in=upgraded.expires_in,
    )


@router.get("/v1/me")
async def me(principal: CurrentUser, session: SessionDep) -> MeRead:
    user = await identity.get_user(session, principal.user_id)
    return MeRead(
        id=user.id,
        email=user.email,
        full_name=user.full_name,
        roles=user.roles,
        company_id=user.company_id,
        mfa_enabled=user.mfa_enabled,
        kyc_status=await profiles.kyc_status(session, user.id),
        accreditation_status=await profiles.accreditation_status(session, user.id),
    )
