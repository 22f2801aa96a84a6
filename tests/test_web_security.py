"""The /app browser layer without a browser: CSRF double-submit, security headers, login redirects."""

from __future__ import annotations

import asyncio
import re
import uuid

import httpx

from services.identity.permissions import Role
from services.identity.tokens import KeyRing, Principal
from tests.factories import PASSWORD, next_totp, register_and_login
from tests.support import csrf_token

CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'"


async def _browser(api: httpx.AsyncClient) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=str(api.base_url), timeout=30)


async def test_app_pages_carry_the_content_security_policy_and_friends(api: httpx.AsyncClient) -> None:
    async with await _browser(api) as browser:
        page = await browser.get("/app/login")
        style = await browser.get("/app/static/app.css")
    assert "cache-control" not in style.headers  # static files may be cached
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CSP
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"  # a reset link's token never leaves in a Referer
    assert page.headers["cache-control"] == "no-store"
    cookie = next(c for c in page.headers.get_list("set-cookie") if c.startswith("pap_csrf="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "<script>" not in page.text and "style=" not in page.text


async def test_a_post_without_the_csrf_token_is_refused(api: httpx.AsyncClient) -> None:
    async with await _browser(api) as browser:
        await browser.get("/app/login")  # gets the CSRF cookie
        response = await browser.post("/app/login", data={"username": "x@example.com", "password": "nope"})
        assert response.status_code == 403
        wrong = await browser.post(
            "/app/login", data={"username": "x@example.com", "password": "nope", "csrf_token": "forged"}
        )
        assert wrong.status_code == 403


async def test_signup_login_and_logout_with_csrf_tokens(api: httpx.AsyncClient) -> None:
    email = f"web-{uuid.uuid4().hex[:10]}@example.com"
    async with await _browser(api) as browser:
        assert (await browser.get("/app/holdings")).headers["location"] == "/app/login?next=%2Fapp%2Fholdings"
        token = csrf_token((await browser.get("/app/signup")).text)
        short = await browser.post(
            "/app/signup", data={"email": email, "password": "short", "full_name": "W", "csrf_token": token}
        )
        assert short.status_code == 422 and 'id="e-password"' in short.text
        created = await browser.post(
            "/app/signup", data={"email": email, "password": PASSWORD, "full_name": "Web User", "csrf_token": token}
        )
        assert created.status_code == 200, created.text
        bad = await browser.post(
            "/app/login", data={"username": email, "password": "wrong-password-1", "csrf_token": token}
        )
        assert bad.status_code == 401 and "wrong" in bad.text
        ok = await browser.post("/app/login", data={"username": email, "password": PASSWORD, "csrf_token": token})
        assert ok.status_code == 303 and ok.headers["location"] == "/app"
        session_cookie = next(c for c in ok.headers.get_list("set-cookie") if c.startswith("pap_session="))
        assert "HttpOnly" in session_cookie and "SameSite=lax" in session_cookie and "Secure" not in session_cookie
        home = await browser.get("/app")
        assert home.status_code == 200 and "Overview" in home.text
        for path in (
            "/app/companies",
            "/app/holdings",
            "/app/orders",
            "/app/verification",
            "/app/security",
            "/app/notifications",
        ):
            page = await browser.get(path)
            assert page.status_code == 200, (path, page.text[:500])
        missing = await browser.get(f"/app/deals/{uuid.uuid4()}")
        assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
        assert "<h1>Not found</h1>" in missing.text
        out = await browser.post("/app/logout", data={"csrf_token": token})
        assert out.status_code == 303
        assert (await browser.get("/app/holdings")).status_code == 303


async def test_an_expired_access_token_is_refreshed_once_for_racing_requests(
    api: httpx.AsyncClient, keyring: KeyRing
) -> None:
    user = await register_and_login(api)
    expired = keyring.issue(Principal(user_id=user.id, roles=frozenset({Role.INVESTOR})), ttl=-60)
    cookie = {"Cookie": f"pap_session={expired}|{user.refresh_token}"}
    async with await _browser(api) as browser:
        first, second = await asyncio.gather(
            browser.get("/app/holdings", headers=cookie), browser.get("/app/orders", headers=cookie)
        )
        assert (first.status_code, second.status_code) == (200, 200)
        renewed = {
            c.split(";")[0]
            for r in (first, second)
            for c in r.headers.get_list("set-cookie")
            if c.startswith("pap_session=")
        }
        assert len(renewed) == 1, renewed  # both got the one rotated pair: no reuse, no revoked session
        again = await browser.get("/app/holdings", headers={"Cookie": renewed.pop()})
        assert again.status_code == 200 and "Holdings" in again.text


async def test_an_mfa_user_logs_in_to_the_app_with_a_code(api: httpx.AsyncClient) -> None:
    user = await register_and_login(api, enrol_mfa=True)
    assert user.totp_secret is not None
    async with await _browser(api) as browser:
        token = csrf_token((await browser.get("/app/login")).text)
        asked = await browser.post(
            "/app/login", data={"username": user.email, "password": PASSWORD, "csrf_token": token}
        )
        assert asked.status_code == 401
        assert 'name="otp"' in asked.text
        assert PASSWORD not in asked.text  # the code step carries a signed challenge, never the password
        assert not any(c.startswith("pap_session=") for c in asked.headers.get_list("set-cookie"))
        challenge = _challenge(asked.text)
        code_step = {"username": user.email, "challenge": challenge, "csrf_token": token}
        wrong = await browser.post("/app/login", data=code_step | {"otp": "000000"})
        assert wrong.status_code == 401 and _challenge(wrong.text) == challenge  # the code may be retried
        forged = await browser.post("/app/login", data=code_step | {"challenge": challenge[:-4] + "AAAA", "otp": "1"})
        assert forged.status_code == 401 and 'name="password"' in forged.text  # back to the password
        ok = await browser.post("/app/login", data=code_step | {"otp": next_totp(user.totp_secret)})
        assert ok.status_code == 303, ok.text
        assert (await browser.get("/app/security")).status_code == 200


def _challenge(page: str) -> str:
    found = re.search(r'name="challenge" value="([^"]+)"', page)
    assert found is not None, "no challenge on the page"
    return found.group(1)


async def test_a_page_asked_for_while_signed_out_is_where_the_login_leads_but_never_off_site(
    api: httpx.AsyncClient,
) -> None:
    user = await register_and_login(api)
    deal_page = f"/app/deals/{uuid.uuid4()}"
    async with await _browser(api) as browser:
        asked = await browser.get(deal_page)
        assert asked.status_code == 303
        assert asked.headers["location"] == f"/app/login?next={deal_page.replace('/', '%2F')}"
        page = await browser.get(asked.headers["location"])
        assert f'name="next" value="{deal_page}"' in page.text
        token = csrf_token(page.text)
        credentials = {"username": user.email, "password": PASSWORD, "csrf_token": token}
        back = await browser.post("/app/login", data={**credentials, "next": deal_page})
        assert back.status_code == 303 and back.headers["location"] == deal_page
        for hostile in ("https://evil.example/app/", "//evil.example", "/app\\@evil.example", "/apps", "/app/\x00"):
            home = await browser.post("/app/login", data={**credentials, "next": hostile})
            assert home.status_code == 303 and home.headers["location"] == "/app", hostile


def _session_cookies(response: httpx.Response) -> list[str]:
    """The values of the session cookies a response sets, in order."""
    cookies = [c.split(";")[0] for c in response.headers.get_list("set-cookie") if c.startswith("pap_session=")]
    return [c.removeprefix("pap_session=").strip('"') for c in cookies]


async def test_mfa_turned_on_after_the_access_token_expired_keeps_the_upgraded_session(
    api: httpx.AsyncClient, keyring: KeyRing
) -> None:
    user = await register_and_login(api)
    async with await _browser(api) as browser:
        token = csrf_token((await browser.get("/app/login")).text)
        signed_in = await browser.post(
            "/app/login", data={"username": user.email, "password": PASSWORD, "csrf_token": token}
        )
        [pair] = _session_cookies(signed_in)
        refresh = pair.split("|")[1]
        started = await browser.post("/app/security/mfa", data={"csrf_token": token})
        secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', started.text)
        assert secret is not None
    # The user scans the code slowly: the access token has expired by the time the code is sent.
    expired = keyring.issue(Principal(user_id=user.id, roles=frozenset({Role.INVESTOR})), ttl=-60)
    async with await _browser(api) as late:
        verified = await late.post(
            "/app/security/mfa/verify",
            data={"code": next_totp(secret.group(1)), "csrf_token": token},
            headers={"Cookie": f"pap_session={expired}|{refresh}; pap_csrf={token}"},
        )
        assert verified.status_code < 400, verified.text[:300]
        [upgraded] = _session_cookies(verified)  # only the MFA session, not the pair refreshed on the way in
        access, new_refresh = upgraded.split("|")
        assert keyring.verify(access).mfa
        later = await late.get("/app/security", headers={"Cookie": f"pap_session={expired}|{new_refresh}"})
        assert later.status_code == 200  # its refresh token still works once the access token expires again
