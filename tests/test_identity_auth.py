"""Identity through the HTTP API: registration, login, refresh rotation, sessions, MFA, throttling, roles."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pyotp
import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from pap.db import SessionFactory
from pap.settings import Settings
from services.identity.permissions import Role
from services.identity.tokens import KeyRing
from tests.factories import PASSWORD, enrol_totp, login, next_totp, register_and_login
from tests.support import eventually, mails, read_topic

Headers = Callable[..., dict[str, str]]


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.require("redis_url"), decode_responses=True)
    yield client
    # Failed logins from tests all come from 127.0.0.1: keep the per-IP counter from locking other tests out.
    await client.delete("pap:identity:login-fail:ip:127.0.0.1")
    await client.aclose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def problem_type(response: httpx.Response) -> str:
    return str(response.json()["type"]).rsplit("/", 1)[-1]


async def test_register_normalises_email_and_gives_investor_role(api: httpx.AsyncClient) -> None:
    raw = f"  New.User-{uuid.uuid4().hex[:8]}@Example.COM "
    response = await api.post("/v1/auth/register", json={"email": raw, "password": PASSWORD, "full_name": "N U"})
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == raw.strip().lower()
    assert body["roles"] == ["investor"]
    assert (await login(api, raw.upper(), PASSWORD)).status_code == 200


@pytest.mark.parametrize(
    ("password", "why"),
    [("short-1A!", "length"), ("password1234", "common"), ("qwertyuiop12", "common"), ("aaaaaaaaaaaaaaa", "pattern")],
)
async def test_weak_passwords_are_refused_with_field_errors(api: httpx.AsyncClient, password: str, why: str) -> None:
    response = await api.post(
        "/v1/auth/register", json={"email": f"w-{uuid.uuid4().hex}@example.com", "password": password, "full_name": "W"}
    )
    assert response.status_code == 422, why
    assert problem_type(response) == "weak-password"
    assert response.json()["errors"][0]["field"] == "password"


async def test_password_containing_the_email_is_refused(api: httpx.AsyncClient) -> None:
    local = f"carol{uuid.uuid4().hex[:6]}"
    response = await api.post(
        "/v1/auth/register",
        json={"email": f"{local}@example.com", "password": f"xx{local}xx-99!", "full_name": "C"},
    )
    assert response.status_code == 422
    assert "email" in response.json()["detail"]


async def test_registering_an_existing_email_does_not_reveal_it_nor_create_a_user(api: httpx.AsyncClient) -> None:
    user = await register_and_login(api)
    again = await api.post(
        "/v1/auth/register", json={"email": user.email, "password": "Another-Pass-9876!", "full_name": "Imposter"}
    )
    assert again.status_code == 201
    assert set(again.json()) == {"id", "email", "full_name", "roles", "company_id"}
    assert again.json()["id"] != str(user.id)
    assert (await login(api, user.email, "Another-Pass-9876!")).status_code == 401
    assert (await login(api, user.email, PASSWORD)).status_code == 200


async def test_registering_an_existing_email_again_and_again_notifies_its_owner_once(
    api: httpx.AsyncClient, sessions: SessionFactory, settings: Settings
) -> None:
    """Anyone may send these requests without end; the owner hears of them once an hour, not once each."""
    user = await register_and_login(api)
    body = {"email": user.email, "password": "Another-Pass-9876!", "full_name": "Imposter"}
    hours = {datetime.now(UTC).hour}
    answers = await asyncio.gather(*(api.post("/v1/auth/register", json=body) for _ in range(4)))
    hours.add(datetime.now(UTC).hour)  # one notice per clock hour: two if the attempts straddled one
    assert [a.status_code for a in answers] == [201] * 4
    async with sessions() as session:
        announced = await session.execute(
            text("SELECT count(*) FROM platform.outbox_event WHERE type = :t AND key = :k"),
            {"t": "identity.user.registration_existing_email", "k": str(user.id)},
        )
        audited = await session.execute(
            text("SELECT count(*) FROM admin.audit_entry WHERE action = :t AND entity_id = :k"),
            {"t": "identity.user.registration_existing_email", "k": str(user.id)},
        )
        assert announced.scalar_one() == len(hours) and audited.scalar_one() == 4  # every attempt is on record
    notices = await eventually(lambda: _security_mails(settings, user.email), lambda m: len(m) >= len(hours))
    assert len(notices) == len(hours)


async def _security_mails(settings: Settings, to: str) -> list[object]:
    return list(mails(settings, to, "registration_attempt"))


async def test_unknown_email_and_wrong_password_are_the_same_401(api: httpx.AsyncClient, redis: Redis) -> None:
    user = await register_and_login(api)
    wrong = await login(api, user.email, "Wrong-password-123!")
    unknown = await login(api, f"nobody-{uuid.uuid4().hex}@example.com", "Wrong-password-123!")
    assert wrong.status_code == unknown.status_code == 401
    strip = {"request_id"}
    assert {k: v for k, v in wrong.json().items() if k not in strip} == {
        k: v for k, v in unknown.json().items() if k not in strip
    }


async def test_unknown_email_takes_about_as_long_as_a_wrong_password(api: httpx.AsyncClient, redis: Redis) -> None:
    user = await register_and_login(api)

    async def timed(email: str) -> float:
        started = time.perf_counter()
        await login(api, email, "Wrong-password-123!")
        return time.perf_counter() - started

    known = min([await timed(user.email) for _ in range(3)])
    unknown = min([await timed(f"nobody-{uuid.uuid4().hex}@example.com") for _ in range(3)])
    assert unknown > known * 0.5, (known, unknown)


async def test_access_token_carries_session_roles_and_no_mfa(api: httpx.AsyncClient, keyring: KeyRing) -> None:
    user = await register_and_login(api)
    principal = keyring.verify(user.headers["Authorization"].split()[1])
    assert principal.user_id == user.id
    assert principal.session_id is not None
    assert principal.roles == {Role.INVESTOR}
    assert principal.mfa is False


async def test_jwks_publishes_the_verification_keys(api: httpx.AsyncClient, keyring: KeyRing) -> None:
    body = (await api.get("/.well-known/jwks.json")).json()
    assert {k["kid"] for k in body["keys"]} == {k.thumbprint() for k in keyring.keys}
    assert all("d" not in k for k in body["keys"])


async def test_refresh_rotates_and_reuse_revokes_the_whole_family(api: httpx.AsyncClient) -> None:
    user = await register_and_login(api)
    first = (await api.post("/v1/auth/refresh", json={"refresh_token": user.refresh_token})).json()
    second = await api.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    reused = await api.post("/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert reused.status_code == 401
    assert problem_type(reused) == "refresh-token-reused"
    # every token of the family is dead: the newest refresh token and the access tokens
    assert (
        await api.post("/v1/auth/refresh", json={"refresh_token": second.json()["refresh_token"]})
    ).status_code == 401
    assert (await api.get("/v1/me", headers=bearer(second.json()["access_token"]))).status_code == 401
    assert (await api.get("/v1/me", headers=user.headers)).status_code == 401


async def test_logout_revokes_the_session_and_its_refresh_token(api: httpx.AsyncClient) -> None:
    user = await register_and_login(api)
    assert (await api.get("/v1/me", headers=user.headers)).status_code == 200
    assert (await api.post("/v1/auth/logout", headers=user.headers)).status_code == 204
    assert (await api.get("/v1/me", headers=user.headers)).status_code == 401
    assert (await api.post("/v1/auth/refresh", json={"refresh_token": user.refresh_token})).status_code == 401


async def test_sessions_are_listed_and_one_can_be_revoked(api: httpx.AsyncClient) -> None:
    user = await register_and_login(api)
    other = (
        await api.post(
            "/v1/auth/token", data={"username": user.email, "password": PASSWORD}, headers={"User-Agent": "phone/1.0"}
        )
    ).json()
    sessions = (await api.get("/v1/auth/sessions", headers=user.headers)).json()["items"]
    assert len(sessions) == 2
    phone = next(s for s in sessions if s["user_agent"] == "phone/1.0")
    assert phone["ip"] == "127.0.0.1" and phone["last_seen_at"] and not phone["current"]
    assert sum(s["current"] for s in sessions) == 1
    first = (await api.get("/v1/auth/sessions", params={"limit": 1}, headers=user.headers)).json()
    rest = (
        await api.get("/v1/auth/sessions", params={"limit": 1, "cursor": first["next_cursor"]}, headers=user.headers)
    ).json()
    assert [s["id"] for s in first["items"] + rest["items"]] == [s["id"] for s in sessions]  # newest first, paged
    assert rest["next_cursor"] is None
    assert (await api.delete(f"/v1/auth/sessions/{phone['id']}", headers=user.headers)).status_code == 204
    assert (await api.get("/v1/me", headers=bearer(other["access_token"]))).status_code == 401
    assert (await api.get("/v1/me", headers=user.headers)).status_code == 200
    remaining = (await api.get("/v1/auth/sessions", headers=user.headers)).json()["items"]
    assert [s["id"] for s in remaining] != [phone["id"]] and len(remaining) == 1


async def test_another_users_session_cannot_be_revoked(api: httpx.AsyncClient) -> None:
    alice = await register_and_login(api)
    bob = await register_and_login(api)
    bobs = (await api.get("/v1/auth/sessions", headers=bob.headers)).json()["items"][0]["id"]
    assert (await api.delete(f"/v1/auth/sessions/{bobs}", headers=alice.headers)).status_code == 404
    assert (await api.get("/v1/me", headers=bob.headers)).status_code == 200


async def test_totp_enrolment_then_login_needs_otp_and_gives_mfa_tokens(
    api: httpx.AsyncClient, keyring: KeyRing, redis: Redis
) -> None:
    user = await register_and_login(api)
    enrolment = (await api.post("/v1/auth/mfa/totp", headers=user.headers)).json()
    assert enrolment["otpauth_uri"].startswith("otpauth://totp/")
    assert (await api.get("/v1/me", headers=user.headers)).json()["mfa_enabled"] is False
    code = pyotp.TOTP(enrolment["secret"]).now()
    verified = (await api.post("/v1/auth/mfa/totp/verify", json={"code": code}, headers=user.headers)).json()
    assert len(verified["recovery_codes"]) == 10 and len(set(verified["recovery_codes"])) == 10
    assert keyring.verify(verified["access_token"]).mfa is True
    assert (await api.get("/v1/me", headers=user.headers)).json()["mfa_enabled"] is True

    missing = await login(api, user.email, PASSWORD)
    assert missing.status_code == 401 and problem_type(missing) == "mfa-required"
    replayed = await login(api, user.email, PASSWORD, otp=code)
    assert replayed.status_code == 401, "a TOTP code is accepted only once"
    fresh = await login(api, user.email, PASSWORD, otp=next_totp(enrolment["secret"]))
    assert fresh.status_code == 200
    assert keyring.verify(fresh.json()["access_token"]).mfa is True


async def test_enabling_mfa_ends_the_users_other_sessions(api: httpx.AsyncClient, redis: Redis) -> None:
    """A session elsewhere proved the password only (it may be whoever made the user turn MFA on): it ends."""
    user = await register_and_login(api)
    elsewhere = (await login(api, user.email, PASSWORD)).json()
    other = await register_and_login(api)  # someone else's session is untouched
    await enrol_totp(api, user)
    assert (await api.get("/v1/me", headers=bearer(elsewhere["access_token"]))).status_code == 401
    refreshed = await api.post("/v1/auth/refresh", json={"refresh_token": elsewhere["refresh_token"]})
    assert refreshed.status_code == 401
    assert (await api.get("/v1/me", headers=user.headers)).status_code == 200
    live = (await api.get("/v1/auth/sessions", headers=user.headers)).json()["items"]
    assert [s["current"] for s in live] == [True]
    assert (await api.get("/v1/me", headers=other.headers)).status_code == 200


async def test_recovery_code_logs_in_once(api: httpx.AsyncClient, keyring: KeyRing, redis: Redis) -> None:
    user = await enrol_totp(api, await register_and_login(api))
    code = user.recovery_codes[3]
    first = await login(api, user.email, PASSWORD, otp=code)
    assert first.status_code == 200 and keyring.verify(first.json()["access_token"]).mfa is True
    assert (await login(api, user.email, PASSWORD, otp=code)).status_code == 401


async def test_two_users_may_hold_the_same_recovery_code(
    api: httpx.AsyncClient, keyring: KeyRing, sessions: SessionFactory
) -> None:
    """Codes are random: two accounts can draw the same one, and each stays its own account's."""
    first = await enrol_totp(api, await register_and_login(api))
    second = await enrol_totp(api, await register_and_login(api))
    code = first.recovery_codes[0]
    async with sessions() as session, session.begin():
        await session.execute(
            text("INSERT INTO identity.recovery_code (id, user_id, code_hash) VALUES (:i, :u, :h)"),
            {"i": uuid.uuid4(), "u": second.id, "h": hashlib.sha256(code.replace("-", "").encode()).hexdigest()},
        )
    assert (await login(api, second.email, PASSWORD, otp=code)).status_code == 200
    signed_in = await login(api, first.email, PASSWORD, otp=code)
    assert signed_in.status_code == 200 and keyring.verify(signed_in.json()["access_token"]).user_id == first.id


async def test_totp_verify_with_a_wrong_code_is_refused(api: httpx.AsyncClient) -> None:
    user = await register_and_login(api)
    secret = (await api.post("/v1/auth/mfa/totp", headers=user.headers)).json()["secret"]
    wrong = str((int(pyotp.TOTP(secret).now()) + 1) % 1_000_000).zfill(6)
    response = await api.post("/v1/auth/mfa/totp/verify", json={"code": wrong}, headers=user.headers)
    assert response.status_code == 422 and problem_type(response) == "invalid-otp"
    assert (await api.get("/v1/me", headers=user.headers)).json()["mfa_enabled"] is False


async def test_account_lockout_after_five_failures_is_a_429_with_retry_after(
    api: httpx.AsyncClient, redis: Redis
) -> None:
    user = await register_and_login(api)
    for _ in range(5):
        assert (await login(api, user.email, "Wrong-password-123!")).status_code == 401
    locked = await login(api, user.email, PASSWORD)
    assert locked.status_code == 429
    assert problem_type(locked) == "login-throttled"
    assert 0 < int(locked.headers["Retry-After"]) <= 900


async def test_ip_throttling_after_twenty_failures(api: httpx.AsyncClient, redis: Redis) -> None:
    await redis.delete("pap:identity:login-fail:ip:127.0.0.1")
    for _ in range(20):
        await login(api, f"ghost-{uuid.uuid4().hex}@example.com", "Wrong-password-123!")
    throttled = await login(api, f"ghost-{uuid.uuid4().hex}@example.com", "Wrong-password-123!")
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) > 0


async def test_privileged_role_needs_mfa_before_privileged_endpoints(
    api: httpx.AsyncClient, token_for: Headers
) -> None:
    admin = token_for(uuid.uuid4(), Role.ADMIN)
    officer = await register_and_login(api, roles=["compliance"], admin_headers=admin, enrol_mfa=False)
    refused = await api.get("/v1/admin/audit/verify", headers=officer.headers)
    assert refused.status_code == 403 and problem_type(refused) == "mfa-required"
    await enrol_totp(api, officer)
    assert (await api.get("/v1/admin/audit/verify", headers=officer.headers)).status_code == 200


async def test_roles_endpoint_sets_roles_and_issuer_needs_company(api: httpx.AsyncClient, token_for: Headers) -> None:
    admin = token_for(uuid.uuid4(), Role.ADMIN)
    user = await register_and_login(api)
    no_company = await api.post(f"/v1/admin/users/{user.id}/roles", json={"roles": ["issuer"]}, headers=admin)
    assert no_company.status_code == 422
    company = uuid.uuid4()
    ok = await api.post(
        f"/v1/admin/users/{user.id}/roles",
        json={"roles": ["investor", "issuer"], "company_id": str(company)},
        headers=admin,
    )
    assert ok.status_code == 200 and ok.json()["roles"] == ["investor", "issuer"]
    refreshed = (await api.post("/v1/auth/refresh", json={"refresh_token": user.refresh_token})).json()
    me = (await api.get("/v1/me", headers=bearer(refreshed["access_token"]))).json()
    assert me["roles"] == ["investor", "issuer"] and me["company_id"] == str(company)
    unknown = await api.post(f"/v1/admin/users/{uuid.uuid4()}/roles", json={"roles": ["investor"]}, headers=admin)
    assert unknown.status_code == 404


async def test_me_reports_profile_statuses(api: httpx.AsyncClient) -> None:
    user = await register_and_login(api, full_name="Grace Hopper")
    me = (await api.get("/v1/me", headers=user.headers)).json()
    assert me == {
        "id": str(user.id),
        "email": user.email,
        "full_name": "Grace Hopper",
        "roles": ["investor"],
        "company_id": None,
        "mfa_enabled": False,
        "kyc_status": "not_started",
        "accreditation_status": "none",
    }


async def test_security_events_reach_the_audit_trail_and_kafka(
    api: httpx.AsyncClient, token_for: Headers, settings: Settings, redis: Redis
) -> None:
    user = await register_and_login(api)
    await login(api, user.email, "Wrong-password-123!")
    auditor = token_for(uuid.uuid4(), Role.COMPLIANCE)

    async def actions() -> set[str]:
        page = (await api.get(f"/v1/admin/audit?entity_id={user.id}", headers=auditor)).json()
        return {item["action"] for item in page["items"]}

    assert {"identity.user.registered", "identity.login.failed"} <= await actions()

    async def events() -> list[Any]:
        return [
            e
            for _, e in await read_topic(settings.require("kafka_bootstrap"), "pap.identity")
            if e.subject == str(user.id)
        ]

    found = await eventually(events, lambda es: len(es) >= 2, timeout=20, what="identity events on Kafka")
    assert {"identity.user.registered", "identity.login.failed"} <= {e.type for e in found}


async def test_sign_ups_from_one_address_are_limited_per_hour(
    api: httpx.AsyncClient, redis: Redis, settings: Settings
) -> None:
    """The test stack allows a million an hour (every test signs up from here): fill the counter to it."""
    key = "pap:identity:register:ip:127.0.0.1"
    await redis.set(key, settings.registrations_per_address_per_hour, ex=3600)
    email = f"late-{uuid.uuid4().hex}@example.com"
    try:
        refused = await api.post(
            "/v1/auth/register", json={"email": email, "password": PASSWORD, "full_name": "Late Comer"}
        )
    finally:
        await redis.delete(key)
    assert refused.status_code == 429 and problem_type(refused) == "registration-throttled"
    assert int(refused.headers["Retry-After"]) > 0
    assert (await login(api, email, PASSWORD)).status_code == 401  # no account was created
