"""Identity under attack: parallel password guesses, a squatted bootstrap email, the last admin,
a demoted user's live tokens, a session's pre-MFA refresh token, and forged list cursors."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pyotp
import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from pap.db import SessionFactory
from pap.settings import Settings
from services import identity
from services.identity.permissions import Role
from services.identity.tokens import KeyRing
from services.identity.users import BootstrapEmailTaken, LastAdmin, find_by_email
from tests.factories import PASSWORD, enrol_totp, login, register_and_login
from tests.support import csrf_token, eventually, waiting_for_a_lock

Headers = Callable[..., dict[str, str]]


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.require("redis_url"), decode_responses=True)
    yield client
    await client.delete("pap:identity:login-fail:ip:127.0.0.1")  # tests share one address: unlock it for the rest
    await client.aclose()


async def test_a_burst_of_parallel_guesses_has_at_most_five_checked(api: httpx.AsyncClient, redis: Redis) -> None:
    user = await register_and_login(api)

    answers = await asyncio.gather(*(login(api, user.email, f"Wrong-password-{n}!") for n in range(15)))

    statuses = [answer.status_code for answer in answers]
    assert statuses.count(401) == 5 and statuses.count(429) == 10, statuses
    assert (await login(api, user.email, PASSWORD)).status_code == 429  # locked for the window, right password or not


async def test_a_right_password_with_a_code_due_does_not_use_up_attempts(api: httpx.AsyncClient, redis: Redis) -> None:
    user = await enrol_totp(api, await register_and_login(api))
    for _ in range(6):  # the password is right; only the code is missing: never a lockout
        assert (await login(api, user.email, PASSWORD)).status_code == 401
    assert (await login(api, user.email, "Wrong-password-123!")).status_code == 401


async def test_the_bootstrap_admin_never_promotes_an_account_someone_registered(
    api: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    squatter = await register_and_login(api)
    async with sessions() as session, session.begin():
        await session.execute(text("UPDATE identity.user SET roles = array_remove(roles, 'admin')"))  # rolled back
        with pytest.raises(BootstrapEmailTaken):
            await identity.ensure_bootstrap_admin(session, email=squatter.email, password="Bootstrap-Pass-123!")
        user = await find_by_email(session, squatter.email)
        assert user is not None and user.roles == ["investor"]
        await session.rollback()


async def test_the_last_admin_cannot_lose_the_role(
    api: httpx.AsyncClient, sessions: SessionFactory, redis: Redis
) -> None:
    admin = await register_and_login(api)
    async with sessions() as session, session.begin():
        await session.execute(  # rolled back: this user is the only admin
            text(
                "UPDATE identity.user SET roles = "
                "CASE WHEN id = :id THEN ARRAY['admin'] ELSE array_remove(roles, 'admin') END"
            ),
            {"id": admin.id},
        )
        with pytest.raises(LastAdmin):
            await identity.change_roles(
                session, redis, actor_id=admin.id, user_id=admin.id, roles=[Role.INVESTOR], company_id=None
            )
        await session.rollback()


async def test_losing_a_role_ends_the_users_sessions_at_once(api: httpx.AsyncClient, token_for: Headers) -> None:
    admin = token_for(uuid.uuid4(), Role.ADMIN, mfa=True)
    user = await register_and_login(api)
    granted = await api.post(
        f"/v1/admin/users/{user.id}/roles", json={"roles": ["investor", "compliance"]}, headers=admin
    )
    assert granted.status_code == 200, granted.text
    assert (await api.get("/v1/me", headers=user.headers)).status_code == 200  # gaining a role ends nothing

    removed = await api.post(f"/v1/admin/users/{user.id}/roles", json={"roles": ["investor"]}, headers=admin)

    assert removed.status_code == 200, removed.text
    assert (await api.get("/v1/me", headers=user.headers)).status_code == 401
    refreshed = await api.post("/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert refreshed.status_code == 401


async def test_mfa_enrolment_spends_the_sessions_password_only_refresh_token(api: httpx.AsyncClient) -> None:
    user = await register_and_login(api)
    before_mfa = user.refresh_token
    await enrol_totp(api, user)

    replayed = await api.post("/v1/auth/refresh", json={"refresh_token": before_mfa})

    assert replayed.status_code == 401
    assert (await api.post("/v1/auth/refresh", json={"refresh_token": user.refresh_token})).status_code == 401
    assert (await api.get("/v1/me", headers=user.headers)).status_code == 401  # reuse ended the session


@pytest.mark.parametrize(
    "forged",
    [
        ["2024-01-01T00:00:00+00:00", 5],
        ["2024-01-01T00:00:00", str(uuid.uuid4())],
        [1, 2],
        ["0001-01-01T00:00:00+14:00", str(uuid.uuid4())],  # before year 1 in UTC
        ["9999-12-31T23:59:59-14:00", str(uuid.uuid4())],  # after year 9999 in UTC
    ],
)
async def test_a_forged_cursor_is_a_422_problem(api: httpx.AsyncClient, forged: list[object]) -> None:
    user = await register_and_login(api)
    cursor = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=")

    response = await api.get("/v1/auth/sessions", params={"cursor": cursor}, headers=user.headers)

    assert response.status_code == 422
    assert response.json()["type"].endswith("/invalid-cursor")


async def test_enrolling_an_authenticator_needs_a_recent_password_sign_in(
    api: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    user = await register_and_login(api)
    async with sessions() as session, session.begin():  # the sign-in was an hour ago (or the token was stolen)
        await session.execute(
            text("UPDATE identity.session SET created_at = now() - interval '1 hour' WHERE user_id = :u"),
            {"u": user.id},
        )

    stale = await api.post("/v1/auth/mfa/totp", headers=user.headers)

    assert stale.status_code == 403 and stale.json()["type"].endswith("/reauthentication-required")
    fresh = await register_and_login(api)
    assert (await api.post("/v1/auth/mfa/totp", headers=fresh.headers)).status_code == 200


async def test_confirming_an_authenticator_also_needs_a_recent_sign_in(
    api: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    """A session that started enrolment when fresh cannot confirm it once old: it could be stolen by then."""
    user = await register_and_login(api)
    secret = (await api.post("/v1/auth/mfa/totp", headers=user.headers)).json()["secret"]
    async with sessions() as session, session.begin():
        await session.execute(
            text("UPDATE identity.session SET created_at = now() - interval '1 hour' WHERE user_id = :u"),
            {"u": user.id},
        )

    stale = await api.post("/v1/auth/mfa/totp/verify", json={"code": pyotp.TOTP(secret).now()}, headers=user.headers)

    assert stale.status_code == 403 and stale.json()["type"].endswith("/reauthentication-required")
    assert (await api.get("/v1/me", headers=user.headers)).json()["mfa_enabled"] is False


async def test_wrong_confirmation_codes_are_throttled_like_sign_ins(api: httpx.AsyncClient, redis: Redis) -> None:
    user = await register_and_login(api)
    secret = (await api.post("/v1/auth/mfa/totp", headers=user.headers)).json()["secret"]
    right = pyotp.TOTP(secret).now()
    wrong = str((int(right) + 500_000) % 1_000_000).zfill(6)

    answers = [await api.post("/v1/auth/mfa/totp/verify", json={"code": wrong}, headers=user.headers) for _ in range(5)]

    assert [a.status_code for a in answers] == [422] * 5
    throttled = await api.post("/v1/auth/mfa/totp/verify", json={"code": right}, headers=user.headers)
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
    assert (await api.get("/v1/me", headers=user.headers)).json()["mfa_enabled"] is False
    assert (await login(api, user.email, PASSWORD)).status_code == 429  # the account's sign-in limit is spent too


async def test_mfa_upgrade_waits_for_a_refresh_of_the_same_session_without_holding_the_session(
    api: httpx.AsyncClient, sessions: SessionFactory, keyring: KeyRing, redis: Redis
) -> None:
    """A refresh locks the refresh token, then the session; the upgrade must take them in that order too
    (the other order deadlocks: PostgreSQL aborts one and the client sees an error)."""
    user = await register_and_login(api)
    async with sessions() as refresh, refresh.begin():
        session_id = (
            await refresh.execute(text("SELECT id FROM identity.session WHERE user_id = :u"), {"u": user.id})
        ).scalar_one()
        await refresh.execute(  # a refresh in flight: its token row is locked
            text("SELECT id FROM identity.refresh_token WHERE session_id = :s FOR UPDATE"), {"s": session_id}
        )

        async def upgrade() -> object:
            async with sessions() as session, session.begin():
                return await identity.upgrade_to_mfa(session, redis, keyring, user_id=user.id, session_id=session_id)

        upgrading = asyncio.create_task(upgrade())
        await eventually(
            lambda: waiting_for_a_lock(sessions, "%identity.refresh_token%"),
            what="the upgrade to wait for the token lock",
        )
        locked = await refresh.execute(  # the refresh's next step: the upgrade must not be holding this row
            text("SELECT id FROM identity.session WHERE id = :s FOR UPDATE NOWAIT"), {"s": session_id}
        )
        assert locked.scalar_one() == session_id
    assert await upgrading is not None


NEW_PASSWORD = "Fresh-Harbour-Lantern-42"


async def test_changing_the_password_signs_out_every_other_session(api: httpx.AsyncClient, redis: Redis) -> None:
    user = await register_and_login(api)
    other = (await login(api, user.email, PASSWORD)).json()  # the same person on another device (or a thief)
    change = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}

    changed = await api.post("/v1/auth/password", json=change, headers=user.headers)

    assert changed.status_code == 204, changed.text
    assert (await api.get("/v1/me", headers=user.headers)).status_code == 200  # this session goes on
    assert (await api.get("/v1/me", headers=bearer(other["access_token"]))).status_code == 401
    assert (await api.post("/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})).status_code == 401
    assert (await login(api, user.email, PASSWORD)).status_code == 401
    assert (await login(api, user.email, NEW_PASSWORD)).status_code == 200

    async def notices() -> list[str]:
        page = (await api.get("/v1/notifications", headers=user.headers)).json()
        return [item["kind"] for item in page["items"]]

    await eventually(notices, lambda kinds: "password_changed" in kinds, what="the password-changed notice")


async def test_a_password_change_needs_the_current_password_and_a_strong_new_one(
    api: httpx.AsyncClient, redis: Redis
) -> None:
    user = await register_and_login(api)
    attempts = [
        ({"current_password": "Not-my-password-1", "new_password": NEW_PASSWORD}, "wrong-current-password"),
        ({"current_password": PASSWORD, "new_password": "password1234"}, "weak-password"),
        ({"current_password": PASSWORD, "new_password": PASSWORD}, "same-password"),
    ]
    for body, problem in attempts:
        response = await api.post("/v1/auth/password", json=body, headers=user.headers)
        assert response.status_code == 422 and response.json()["type"].endswith(f"/{problem}"), response.text
    assert (await login(api, user.email, PASSWORD)).status_code == 200  # nothing changed
    assert (await api.post("/v1/auth/password", json={"new_password": NEW_PASSWORD})).status_code == 401


async def test_the_app_changes_the_password_from_the_security_page(api: httpx.AsyncClient, redis: Redis) -> None:
    user = await register_and_login(api)
    async with httpx.AsyncClient(base_url=str(api.base_url), timeout=30) as browser:
        token = csrf_token((await browser.get("/app/login")).text)
        signed_in = await browser.post(
            "/app/login", data={"username": user.email, "password": PASSWORD, "csrf_token": token}
        )
        assert signed_in.status_code == 303
        form = {"csrf_token": token, "current_password": "Not-my-password-1", "new_password": NEW_PASSWORD}
        wrong = await browser.post("/app/security/password", data=form)
        assert 'id="e-current_password"' in wrong.text
        form["current_password"] = PASSWORD
        done = await browser.post("/app/security/password", data=form)
        assert "Your password was changed" in done.text
        assert (await browser.get("/app/security")).status_code == 200  # this browser stays signed in
    assert (await api.get("/v1/me", headers=user.headers)).status_code == 401  # the API session was another one
    assert (await login(api, user.email, NEW_PASSWORD)).status_code == 200


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
