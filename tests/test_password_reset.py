"""A forgotten password: a one-time emailed link (through the running consumers and the SMTP sink) sets a new one."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from email.message import EmailMessage

import httpx
from sqlalchemy import func, text
from sqlmodel import col, select

from models.base import utcnow
from models.identity import PasswordReset
from pap.db import SessionFactory, transaction
from pap.settings import Settings
from services.identity.throttling import MAX_RESETS_PER_ACCOUNT, MAX_RESETS_PER_IP
from services.identity.tokens import KeyRing
from tests.factories import PASSWORD, TestUser, login, register_and_login
from tests.support import csrf_token, eventually, mails

NEW_PASSWORD = "Another-Long-Passphrase-77"
ACCEPTED = "If an account uses this email, a reset link is on its way. It works once, for 30 minutes."


async def _reset_link(settings: Settings, user: TestUser, count: int = 1) -> str:
    """The link of the `count`-th reset email the user received."""

    async def received() -> list[EmailMessage]:
        return mails(settings, user.email, "password_reset_link")

    messages = await eventually(received, lambda m: len(m) >= count, what="the reset email")
    body = messages[count - 1].get_body(("plain",))
    assert body is not None
    match = re.search(r"(http://\S+/app/password-reset/confirm\?token=(\S+))", body.get_content())
    assert match, body.get_content()
    return match.group(1)


def _token(link: str) -> str:
    return link.rsplit("token=", 1)[1]


async def _resets(sessions: SessionFactory, user_id: uuid.UUID) -> list[PasswordReset]:
    async with sessions() as session:
        query = (
            select(PasswordReset).where(col(PasswordReset.user_id) == user_id).order_by(col(PasswordReset.created_at))
        )
        return list((await session.exec(query)).all())


async def test_a_forgotten_password_is_reset_once_through_the_emailed_link(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    user = await register_and_login(api)
    requested = await api.post("/v1/auth/password-reset", json={"email": user.email.upper()})
    assert requested.status_code == 202, requested.text
    assert requested.json() == {"detail": ACCEPTED}
    token = _token(await _reset_link(settings, user))

    weak = await api.post("/v1/auth/password-reset/confirm", json={"token": token, "new_password": "short"})
    assert weak.status_code == 422
    assert weak.json()["errors"][0]["field"] == "new_password"

    done = await api.post("/v1/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD})
    assert done.status_code == 204, done.text
    assert (await api.get("/v1/me", headers=user.headers)).status_code == 401  # every session ended
    refreshed = await api.post("/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert refreshed.status_code == 401
    assert (await login(api, user.email, PASSWORD)).status_code == 401
    assert (await login(api, user.email, NEW_PASSWORD)).status_code == 200

    again = await api.post("/v1/auth/password-reset/confirm", json={"token": token, "new_password": PASSWORD + "x"})
    assert again.status_code == 422
    assert again.json()["type"].endswith("/reset-link-invalid")
    assert (await login(api, user.email, NEW_PASSWORD)).status_code == 200

    async def notices() -> list[EmailMessage]:
        return mails(settings, user.email, "password_reset")

    await eventually(notices, what="the password-reset security notice")


async def test_an_unknown_email_gets_the_same_answer_and_nothing_is_recorded(
    api: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    async def requested_events() -> int:
        async with sessions() as session:
            query = text("SELECT count(*) FROM platform.outbox_event WHERE type = 'identity.password.reset_requested'")
            return int((await session.execute(query)).scalar_one())

    before = await requested_events()
    answer = await api.post("/v1/auth/password-reset", json={"email": f"nobody-{uuid.uuid4().hex}@example.com"})
    assert answer.status_code == 202
    assert answer.json() == {"detail": ACCEPTED}
    assert await requested_events() == before

    malformed = await api.post("/v1/auth/password-reset", json={"email": "not an email"})
    assert malformed.status_code == 422
    assert malformed.headers["content-type"].startswith("application/problem+json")


async def test_a_link_stops_working_when_it_expires_or_the_password_changes(
    api: httpx.AsyncClient, sessions: SessionFactory, keyring: KeyRing
) -> None:
    user = await register_and_login(api)
    for _ in range(2):
        assert (await api.post("/v1/auth/password-reset", json={"email": user.email})).status_code == 202
    expiring, superseded = await _resets(sessions, user.id)
    async with transaction(sessions) as session:
        row = await session.get(PasswordReset, expiring.id)
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)
        session.add(row)
    expired = keyring.issue_password_reset(expiring.id, user.id, expiring.expires_at)
    refused = await api.post("/v1/auth/password-reset/confirm", json={"token": expired, "new_password": NEW_PASSWORD})
    assert refused.status_code == 422

    changed = await api.post(
        "/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=user.headers,
    )
    assert changed.status_code == 204, changed.text
    stale = keyring.issue_password_reset(superseded.id, user.id, superseded.expires_at)
    refused = await api.post("/v1/auth/password-reset/confirm", json={"token": stale, "new_password": PASSWORD + "y"})
    assert refused.status_code == 422
    assert (await login(api, user.email, NEW_PASSWORD)).status_code == 200


async def test_a_reset_token_and_an_access_token_are_never_taken_for_each_other(
    api: httpx.AsyncClient, sessions: SessionFactory, keyring: KeyRing
) -> None:
    user = await register_and_login(api)
    access = user.headers["Authorization"].removeprefix("Bearer ")
    refused = await api.post("/v1/auth/password-reset/confirm", json={"token": access, "new_password": NEW_PASSWORD})
    assert refused.status_code == 422

    assert (await api.post("/v1/auth/password-reset", json={"email": user.email})).status_code == 202
    (reset,) = await _resets(sessions, user.id)
    token = keyring.issue_password_reset(reset.id, user.id, reset.expires_at)
    assert (await api.get("/v1/me", headers={"Authorization": f"Bearer {token}"})).status_code == 401
    other = await register_and_login(api)  # a link names its account: it cannot reset another one
    forged = keyring.issue_password_reset(reset.id, other.id, reset.expires_at)
    refused = await api.post("/v1/auth/password-reset/confirm", json={"token": forged, "new_password": NEW_PASSWORD})
    assert refused.status_code == 422
    assert (await login(api, other.email, PASSWORD)).status_code == 200


async def test_requests_are_limited_per_account_quietly_and_per_address_loudly(
    api: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    user = await register_and_login(api)
    for _ in range(MAX_RESETS_PER_ACCOUNT + 2):
        answer = await api.post("/v1/auth/password-reset", json={"email": user.email})
        assert answer.status_code == 202
    assert len(await _resets(sessions, user.id)) == MAX_RESETS_PER_ACCOUNT  # no flood of the owner's inbox

    async with sessions() as session:
        before = await session.scalar(select(func.count()).select_from(PasswordReset))
    for n in range(MAX_RESETS_PER_IP - MAX_RESETS_PER_ACCOUNT - 2):
        assert (await api.post("/v1/auth/password-reset", json={"email": f"n{n}@example.com"})).status_code == 202
    throttled = await api.post("/v1/auth/password-reset", json={"email": user.email})
    assert throttled.status_code == 429
    assert throttled.json()["type"].endswith("/password-reset-throttled")
    assert int(throttled.headers["retry-after"]) > 0
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(PasswordReset)) == before


async def test_the_app_resets_a_password_from_the_emailed_link(api: httpx.AsyncClient, settings: Settings) -> None:
    user = await register_and_login(api)
    async with httpx.AsyncClient(base_url=str(api.base_url), timeout=30) as browser:
        login_page = (await browser.get("/app/login")).text
        assert 'href="/app/password-reset"' in login_page
        form = await browser.get("/app/password-reset")
        sent = await browser.post(
            "/app/password-reset", data={"email": user.email, "csrf_token": csrf_token(form.text)}
        )
        assert sent.status_code == 200
        assert "a reset link is on its way" in sent.text

        link = await _reset_link(settings, user)
        page = await browser.get(link.removeprefix(str(api.base_url).rstrip("/")))
        assert page.status_code == 200
        assert f'name="token" value="{_token(link)}"' in page.text
        weak = await browser.post(
            "/app/password-reset/confirm",
            data={"token": _token(link), "new_password": "short", "csrf_token": csrf_token(page.text)},
        )
        assert weak.status_code == 422
        assert 'id="e-new_password"' in weak.text and 'name="token"' in weak.text  # try again with the same link
        done = await browser.post(
            "/app/password-reset/confirm",
            data={"token": _token(link), "new_password": NEW_PASSWORD, "csrf_token": csrf_token(page.text)},
        )
        assert done.status_code == 200
        assert "Password changed: log in with the new one." in done.text
        used = await browser.post(
            "/app/password-reset/confirm",
            data={"token": _token(link), "new_password": NEW_PASSWORD, "csrf_token": csrf_token(page.text)},
        )
        assert used.status_code == 422
        assert "invalid, expired or already used" in used.text
    assert (await login(api, user.email, NEW_PASSWORD)).status_code == 200
