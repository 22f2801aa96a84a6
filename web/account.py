"""Sign-up, log-in (with TOTP), log-out, the security page (sessions, MFA) and notifications."""

from __future__ import annotations

import io
import uuid
from typing import Annotated

import segno
from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError

from api.deps import RedisDep, SessionsDep, SettingsDep, StateDep
from models.identity import (
    PasswordChange,
    PasswordResetAccepted,
    PasswordResetConfirm,
    PasswordResetRequest,
    RegisterRequest,
)
from pap.db import transaction
from services import identity, notifications
from services.errors import DomainError
from services.identity.sessions import InvalidCredentials, MfaRequired
from web.core import MaybeViewer, Viewer, clear_session, field_errors, redirect, render, safe_next, set_session

router = APIRouter()


@router.get("/signup")
async def signup_page(request: Request) -> Response:
    return await render(request, "signup.html")


@router.post("/signup")
async def signup(
    request: Request,
    sessions: SessionsDep,
    redis: RedisDep,
    settings: SettingsDep,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    full_name: Annotated[str, Form()] = "",
) -> Response:
    form = {"email": email, "full_name": full_name}
    try:
        body = RegisterRequest(email=email, password=password, full_name=full_name)
        await identity.take_registration_slot(
            redis, ip=_ip(request), per_hour=settings.registrations_per_address_per_hour
        )
        async with transaction(sessions) as session:
            await identity.register(session, email=body.email, password=body.password, full_name=body.full_name)
    except (DomainError, ValidationError) as error:
        status_code = error.status if isinstance(error, DomainError) else 422
        return await render(
            request, "signup.html", {"errors": field_errors(error), "form": form}, status_code=status_code
        )
    return await render(request, "login.html", {"form": {"username": email}, "notice": "Account created: log in."})


@router.get("/login")
async def login_page(request: Request, next: str = "") -> Response:
    return await render(request, "login.html", {"next": safe_next(next)})


@router.post("/login")
async def login(
    request: Request,
    sessions: SessionsDep,
    state: StateDep,
    redis: RedisDep,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    otp: Annotated[str, Form()] = "",
    challenge: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    """Password, then (with MFA) a one-time code; the code step carries a signed challenge, never the password.
    Signed in, the browser goes on to `next` (the page that asked for a login) when it is a page of the app."""
    destination = safe_next(next)
    email = username.strip().lower()
    ip = _ip(request)
    user_agent = request.headers.get("user-agent")
    form = {"username": username}
    outcome: identity.IssuedTokens | DomainError
    counted = False  # this attempt holds one of the account's throttle slots
    try:
        if challenge:  # the code step: throttled and audited as the account that gave its password
            user_id, email = state.keyring.verify_mfa_challenge(challenge)
        await identity.reserve_login_attempt(redis, email=email, ip=ip)
        counted = True
        async with transaction(sessions) as session:
            if challenge:
                outcome = await identity.mfa_login(
                    session, state.keyring, user_id=user_id, otp=otp, ip=ip, user_agent=user_agent
                )
            else:
                outcome = await identity.password_login(
                    session,
                    state.keyring,
                    email=email,
                    password=password,
                    otp=otp.strip() or None,
                    ip=ip,
                    user_agent=user_agent,
                )
    except DomainError as error:
        outcome = error
    if isinstance(outcome, DomainError):
        if counted:
            failed = isinstance(outcome, InvalidCredentials)
            await identity.settle_login_attempt(redis, email=email, ip=ip, result="failed" if failed else "undecided")
        if isinstance(outcome, MfaRequired) and outcome.user_id is not None:
            challenge = state.keyring.issue_mfa_challenge(outcome.user_id, email)
            ctx: dict[str, object] = {
                "form": form,
                "challenge": challenge,
                "next": destination,
                "notice": "Enter the code from your app.",
            }
            return await render(request, "login.html", ctx, status_code=401)
        keep = challenge if isinstance(outcome, InvalidCredentials) else ""  # a wrong code may be retried
        ctx = {"form": form, "challenge": keep, "mfa": bool(otp), "next": destination, "errors": {"_": outcome.detail}}
        return await render(request, "login.html", ctx, status_code=401)
    await identity.settle_login_attempt(redis, email=email, ip=ip, result="signed_in")
    response = redirect(destination)
    set_session(request, response, outcome)
    return response


@router.get("/password-reset")
async def password_reset_page(request: Request) -> Response:
    return await render(request, "password_reset.html")


@router.post("/password-reset")
async def request_password_reset(
    request: Request, sessions: SessionsDep, redis: RedisDep, email: Annotated[str, Form()] = ""
) -> Response:
    """The API's reset request, as a form: the same answer whether or not an account uses the email."""
    form = {"email": email}
    try:
        body = PasswordResetRequest(email=email)
        async with transaction(sessions) as session:
            await identity.request_password_reset(session, redis, email=body.email, ip=_ip(request))
    except (DomainError, ValidationError) as error:
        status = error.status if isinstance(error, DomainError) else 422
        ctx = {"errors": field_errors(error), "form": form}
        return await render(request, "password_reset.html", ctx, status_code=status)
    return await render(request, "password_reset.html", {"sent": True, "notice": PasswordResetAccepted().detail})


@router.get("/password-reset/confirm")
async def password_reset_confirm_page(request: Request, token: str = "") -> Response:
    """The emailed link's page: the token only travels on to the form (the page is never cached or referred)."""
    return await render(request, "password_reset.html", {"token": token[:4096]})


@router.post("/password-reset/confirm")
async def confirm_password_reset(
    request: Request,
    sessions: SessionsDep,
    redis: RedisDep,
    state: StateDep,
    token: Annotated[str, Form()] = "",
    new_password: Annotated[str, Form()] = "",
) -> Response:
    try:
        body = PasswordResetConfirm(token=token, new_password=new_password)
        async with transaction(sessions) as session:
            await identity.reset_password(
                session, redis, state.keyring, token=body.token, new_password=body.new_password
            )
    except (DomainError, ValidationError) as error:
        errors = field_errors(error)
        if "token" in errors:  # nothing to retry with: offer a new link
            return await render(request, "password_reset.html", {"errors": errors}, status_code=422)
        return await render(request, "password_reset.html", {"token": token, "errors": errors}, status_code=422)
    response = await render(request, "login.html", {"notice": "Password changed: log in with the new one."})
    clear_session(response)
    return response


def _ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/logout")
async def logout(request: Request, principal: MaybeViewer, sessions: SessionsDep, redis: RedisDep) -> Response:
    if principal is not None and principal.session_id is not None:
        async with transaction(sessions) as session:
            await identity.revoke_session(
                session, redis, user_id=principal.user_id, session_id=principal.session_id, reason="logout"
            )
    response = redirect("/app/login")
    clear_session(response)
    return response


async def _security(request: Request, principal: Viewer, sessions: SessionsDep, **extra: object) -> Response:
    async with sessions() as session:
        user = await identity.get_user(session, principal.user_id)
        items = await identity.list_sessions(session, user_id=principal.user_id, current=principal.session_id)
    return await render(request, "security.html", {"user": user, "sessions": items, **extra})


@router.get("/security")
async def security_page(request: Request, principal: Viewer, sessions: SessionsDep) -> Response:
    return await _security(request, principal, sessions)


@router.post("/security/sessions/{session_id}/revoke")
async def revoke(
    session_id: uuid.UUID, request: Request, principal: Viewer, sessions: SessionsDep, redis: RedisDep
) -> Response:
    async with transaction(sessions) as session:
        await identity.revoke_session(session, redis, user_id=principal.user_id, session_id=session_id, reason="user")
    if session_id == principal.session_id:
        response = redirect("/app/login")
        clear_session(response)
        return response
    return redirect("/app/security")


@router.post("/security/password")
async def change_password(
    request: Request,
    principal: Viewer,
    sessions: SessionsDep,
    redis: RedisDep,
    current_password: Annotated[str, Form()] = "",
    new_password: Annotated[str, Form()] = "",
) -> Response:
    """The API's password change, as a form; this browser stays signed in, every other session ends."""
    try:
        body = PasswordChange(current_password=current_password, new_password=new_password)
        async with transaction(sessions) as session:
            await identity.change_password(
                session,
                redis,
                user_id=principal.user_id,
                session_id=principal.session_id,
                ip=_ip(request),
                current_password=body.current_password,
                new_password=body.new_password,
            )
    except (DomainError, ValidationError) as error:
        return await _security(request, principal, sessions, password_errors=field_errors(error))
    return await _security(request, principal, sessions, password_changed=True)


@router.post("/security/mfa")
async def start_mfa(request: Request, principal: Viewer, sessions: SessionsDep) -> Response:
    try:
        async with transaction(sessions) as session:
            enrolment = await identity.start_totp(session, principal.user_id, principal.session_id)
    except DomainError as error:
        return await _security(request, principal, sessions, mfa_start_error=error.detail)
    buffer = io.BytesIO()
    segno.make(enrolment.otpauth_uri, error="m").save(buffer, kind="svg", scale=4, svgclass=None, lineclass=None)
    svg = buffer.getvalue().decode().split("?>", 1)[-1]
    return await _security(request, principal, sessions, enrolment=enrolment, qr_svg=svg)


@router.post("/security/mfa/verify")
async def verify_mfa(
    request: Request,
    principal: Viewer,
    sessions: SessionsDep,
    redis: RedisDep,
    state: StateDep,
    code: Annotated[str, Form()] = "",
) -> Response:
    try:
        async with transaction(sessions) as session:
            codes = await identity.confirm_totp(
                session,
                redis,
                user_id=principal.user_id,
                session_id=principal.session_id,
                ip=_ip(request),
                code=code.strip(),
            )
            upgraded = await identity.upgrade_to_mfa(
                session, redis, state.keyring, user_id=principal.user_id, session_id=principal.session_id
            )
    except DomainError as error:
        return await _security(request, principal, sessions, mfa_errors={"code": error.detail})
    response = await _security(request, principal, sessions, recovery_codes=codes)
    if upgraded is not None:
        set_session(request, response, upgraded)
    return response


@router.get("/notifications")
async def notifications_page(request: Request, principal: Viewer, sessions: SessionsDep) -> Response:
    async with sessions() as session:
        page = await notifications.list_notifications(session, principal.user_id, limit=50, cursor=None)
    return await render(request, "notifications.html", {"items": page.items})


@router.post("/notifications/{notification_id}/read")
async def mark_read(notification_id: uuid.UUID, principal: Viewer, sessions: SessionsDep) -> Response:
    async with transaction(sessions) as session:
        await notifications.mark_read(session, principal.user_id, notification_id)
    return redirect("/app/notifications")


@router.post("/notifications/read-all")
async def mark_all(principal: Viewer, sessions: SessionsDep) -> Response:
    async with transaction(sessions) as session:
        await notifications.mark_all_read(session, principal.user_id)
    return redirect("/app/notifications")
