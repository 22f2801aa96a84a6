"""Every endpoint of identity, profiles and admin refuses bad tokens (401), wrong roles (403) and bad bodies (422)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from services.identity.permissions import Role
from services.identity.tokens import KeyRing, Principal

Headers = Callable[..., dict[str, str]]
X = "00000000-0000-0000-0000-000000000001"

AUTHENTICATED = [
    ("POST", "/v1/auth/logout", None),
    ("GET", "/v1/auth/sessions", None),
    ("DELETE", f"/v1/auth/sessions/{X}", None),
    ("POST", "/v1/auth/mfa/totp", None),
    ("POST", "/v1/auth/mfa/totp/verify", {"code": "123456"}),
    ("GET", "/v1/me", None),
    ("GET", "/v1/profiles/me", None),
    ("PUT", "/v1/profiles/me", {"kind": "individual", "name": "A", "residence_country": "US"}),
    (
        "POST",
        "/v1/profiles/me/kyc",
        {"legal_name": "A", "date_of_birth": "1980-01-01", "country": "US", "tax_id_last4": "1234"},
    ),
    ("GET", "/v1/profiles/me/kyc", None),
    ("POST", "/v1/profiles/me/accreditation", {"method": "income"}),
    ("GET", "/v1/profiles/me/accreditations", None),
    ("GET", f"/v1/profiles/accreditations/{X}", None),
    ("POST", f"/v1/compliance/accreditations/{X}/decision", {"decision": "approve", "reason": "r"}),
    ("POST", f"/v1/compliance/kyc/{X}/decision", {"decision": "approve", "reason": "r"}),
    ("GET", "/v1/compliance/kyc/reviews", None),
    ("POST", f"/v1/admin/users/{X}/roles", {"roles": ["investor"]}),
    ("GET", "/v1/admin/audit", None),
    ("GET", "/v1/admin/audit/verify", None),
]
PRIVILEGED = [e for e in AUTHENTICATED if e[1].startswith(("/v1/compliance", "/v1/admin"))]


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def bad_tokens(keyring: KeyRing, tmp: Path) -> dict[str, dict[str, str]]:
    who = Principal(user_id=uuid.uuid4(), roles=frozenset({Role.ADMIN, Role.COMPLIANCE}), mfa=True)
    good = keyring.issue(who)
    header, payload, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    tampered = f"{header}.{_b64({**claims, 'sub': str(uuid.uuid4())})}.{signature}"
    none = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}."
    return {
        "missing": {},
        "expired": {"Authorization": f"Bearer {keyring.issue(who, ttl=60, now=int(time.time()) - 3600)}"},
        "other-key": {"Authorization": f"Bearer {KeyRing.load(tmp / 'other').issue(who)}"},
        "alg-none": {"Authorization": f"Bearer {none}"},
        "tampered": {"Authorization": f"Bearer {tampered}"},
        "basic": {"Authorization": "Basic dXNlcjpwYXNz"},
    }


async def test_every_endpoint_refuses_missing_or_bad_tokens(
    api: httpx.AsyncClient, keyring: KeyRing, tmp_path: Path
) -> None:
    failures = []
    for name, headers in bad_tokens(keyring, tmp_path).items():
        for method, path, body in AUTHENTICATED:
            response = await api.request(method, path, json=body, headers=headers)
            if response.status_code != 401 or not response.headers["content-type"].startswith(
                "application/problem+json"
            ):
                failures.append((name, method, path, response.status_code))
    assert failures == []


async def test_investor_gets_403_on_every_privileged_endpoint(api: httpx.AsyncClient, token_for: Headers) -> None:
    investor = token_for(uuid.uuid4(), Role.INVESTOR, Role.ISSUER, mfa=True)
    codes = {(m, p): (await api.request(m, p, json=b, headers=investor)).status_code for m, p, b in PRIVILEGED}
    assert set(codes.values()) == {403}, codes


async def test_privileged_role_without_mfa_gets_mfa_required(api: httpx.AsyncClient, token_for: Headers) -> None:
    no_mfa = token_for(uuid.uuid4(), Role.ADMIN, Role.COMPLIANCE, mfa=False)
    for method, path, body in PRIVILEGED:
        response = await api.request(method, path, json=body, headers=no_mfa)
        assert response.status_code == 403 and response.json()["type"].endswith("mfa-required"), path


async def test_deal_manager_without_mfa_gets_mfa_required_on_deal_actions(
    api: httpx.AsyncClient, token_for: Headers
) -> None:
    no_mfa = token_for(uuid.uuid4(), Role.DEAL_MANAGER, mfa=False)
    deal_id = uuid.uuid4()
    for path, body in (
        (f"/v1/deals/{deal_id}/issuer-decision", {"decision": "waive"}),
        (f"/v1/deals/{deal_id}/settlement/confirm", None),
        (f"/v1/deals/{deal_id}/cancel", {"reason": "x"}),
    ):
        response = await api.post(path, json=body, headers=no_mfa)
        assert response.status_code == 403 and response.json()["type"].endswith("mfa-required"), (path, response.text)


async def test_another_users_accreditation_is_hidden(api: httpx.AsyncClient) -> None:
    from tests.factories import register_and_login

    alice = await register_and_login(api)
    bob = await register_and_login(api)
    acc = (await api.post("/v1/profiles/me/accreditation", json={"method": "income"}, headers=alice.headers)).json()
    assert (await api.get(f"/v1/profiles/accreditations/{acc['id']}", headers=bob.headers)).status_code == 404
    assert (await api.get(f"/v1/profiles/accreditations/{acc['id']}", headers=alice.headers)).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/auth/register", {"email": "x@example.com"}),
        ("POST", "/v1/auth/register", {"email": "not-an-email", "password": "Long-enough-pass-1!", "full_name": "A"}),
        ("POST", "/v1/auth/register", {"email": 5, "password": [], "full_name": None}),
        ("POST", "/v1/auth/refresh", {}),
        ("POST", "/v1/auth/mfa/totp/verify", {"code": "abc"}),
        ("PUT", "/v1/profiles/me", {"kind": "robot", "name": "", "residence_country": "usa"}),
        (
            "POST",
            "/v1/profiles/me/kyc",
            {"legal_name": "A", "date_of_birth": "yesterday", "country": "US", "tax_id_last4": "12"},
        ),
        (
            "POST",
            "/v1/profiles/me/kyc",
            {"legal_name": "A", "date_of_birth": "2999-01-01", "country": "US", "tax_id_last4": "1234"},
        ),
        ("POST", "/v1/profiles/me/accreditation", {"method": "vibes"}),
        ("POST", f"/v1/compliance/accreditations/{X}/decision", {"decision": "maybe"}),
        ("POST", f"/v1/admin/users/{X}/roles", {"roles": ["emperor"]}),
        ("POST", "/v1/admin/users/not-a-uuid/roles", {"roles": ["investor"]}),
        ("GET", "/v1/admin/audit?limit=0", None),
        ("GET", "/v1/admin/audit?cursor=abc", None),
    ],
)
async def test_malformed_bodies_are_422_problems_with_field_errors(
    api: httpx.AsyncClient, token_for: Headers, method: str, path: str, body: object
) -> None:
    headers = token_for(uuid.uuid4(), Role.INVESTOR, Role.ADMIN, Role.COMPLIANCE, mfa=True)
    response = await api.request(method, path, json=body, headers=headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"]


async def test_token_endpoint_with_missing_form_fields_is_422(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/auth/token", data={"username": "a@example.com"})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "password"
    assert (await api.post("/v1/auth/token", json={"username": "a", "password": "b"})).status_code == 422
