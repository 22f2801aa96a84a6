"""Test data through the real API: users (optionally with roles and MFA) and verified buyers.

user = await register_and_login(api)                                   # an investor
dm = await register_and_login(api, roles=["deal_manager"], admin_headers=token_for(uuid4(), Role.ADMIN))
buyer = await make_verified_buyer(api, compliance_headers=token_for(uuid4(), Role.COMPLIANCE))
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pyotp

from tests.support import eventually

PASSWORD = "Correct-Horse-Battery-42!"
PRIVILEGED = {"deal_manager", "compliance", "admin"}


@dataclass
class TestUser:
    __test__ = False  # not a test class

    id: uuid.UUID
    email: str
    password: str
    headers: dict[str, str]
    refresh_token: str = ""
    totp_secret: str | None = None
    recovery_codes: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)


def _ok(response: httpx.Response, *expected: int) -> Any:
    assert response.status_code in (expected or (200,)), (
        f"{response.request.url}: {response.status_code} {response.text}"
    )
    return response.json() if response.content else None


async def login(api: httpx.AsyncClient, email: str, password: str, otp: str | None = None) -> httpx.Response:
    data = {"username": email, "password": password}
    if otp:
        data["otp"] = otp
    return await api.post("/v1/auth/token", data=data)


async def enrol_totp(api: httpx.AsyncClient, user: TestUser) -> TestUser:
    """Enrol TOTP; the verify answer upgrades the current session, so `user.headers` carry `mfa: true`."""
    enrolment = _ok(await api.post("/v1/auth/mfa/totp", headers=user.headers))
    code = pyotp.TOTP(enrolment["secret"]).now()
    verified = _ok(await api.post("/v1/auth/mfa/totp/verify", json={"code": code}, headers=user.headers))
    user.totp_secret = enrolment["secret"]
    user.recovery_codes = verified["recovery_codes"]
    user.headers = {"Authorization": f"Bearer {verified['access_token']}"}
    user.refresh_token = verified["refresh_token"]
    return user


def next_totp(secret: str) -> str:
    """The code of the next 30 s step (accepted by the drift window, and newer than any code used so far)."""
    return pyotp.TOTP(secret).at(time.time() + 30)


async def register_and_login(
    api: httpx.AsyncClient,
    *,
    roles: list[str] | None = None,
    admin_headers: dict[str, str] | None = None,
    company_id: uuid.UUID | None = None,
    enrol_mfa: bool | None = None,
    full_name: str = "Test User",
    password: str = PASSWORD,
) -> TestUser:
    """Register, optionally set roles (needs `admin_headers`), log in; privileged roles enrol TOTP by default."""
    email = f"user-{uuid.uuid4().hex[:12]}@example.com"
    created = _ok(
        await api.post("/v1/auth/register", json={"email": email, "password": password, "full_name": full_name}), 201
    )
    user_id = uuid.UUID(created["id"])
    if roles:
        assert admin_headers is not None, "setting roles needs admin_headers (e.g. token_for(uuid4(), Role.ADMIN))"
        body: dict[str, Any] = {"roles": roles}
        if company_id is not None:
            body["company_id"] = str(company_id)
        _ok(await api.post(f"/v1/admin/users/{user_id}/roles", json=body, headers=admin_headers))
    tokens = _ok(await login(api, email, password))
    user = TestUser(
        id=user_id,
        email=email,
        password=password,
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        refresh_token=tokens["refresh_token"],
        roles=roles or ["investor"],
    )
    if enrol_mfa or (enrol_mfa is None and PRIVILEGED & set(roles or [])):
        await enrol_totp(api, user)
    return user


async def make_verified_buyer(
    api: httpx.AsyncClient,
    *,
    compliance_headers: dict[str, str],
    user: TestUser | None = None,
    legal_name: str = "Ada Lovelace",
    method: str = "income",
) -> TestUser:
    """KYC through the sandbox provider and an approved accreditation, via the real API, until eligible."""
    user = user or await register_and_login(api)
    kyc = {"legal_name": legal_name, "date_of_birth": "1985-12-10", "country": "US", "tax_id_last4": "1234"}
    _ok(await api.post("/v1/profiles/me/kyc", json=kyc, headers=user.headers), 202)

    async def me() -> dict[str, Any]:
        result: dict[str, Any] = _ok(await api.get("/v1/me", headers=user.headers))
        return result

    await eventually(me, lambda m: m["kyc_status"] == "approved", timeout=30, what="KYC approved")
    accreditation = _ok(
        await api.post("/v1/profiles/me/accreditation", json={"method": method}, headers=user.headers), 202
    )
    _ok(
        await api.post(
            f"/v1/compliance/accreditations/{accreditation['id']}/decision",
            json={"decision": "approve", "reason": "documents verified"},
            headers=compliance_headers,
        )
    )
    final = await me()
    assert final["accreditation_status"] == "approved", final
    return user
