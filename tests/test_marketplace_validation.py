"""Every order validation rule is a 422 problem with its own type and leaves no trace (no row, reservation, event)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from pap.db import SessionFactory
from services.identity.permissions import Role
from tests.market_support import new_security
from tests.marketplace_support import (
    Headers,
    available,
    marketplace_events_of,
    order_body,
    orders_of,
    reserved_outstanding,
    seller_with_shares,
)

FUTURE = (datetime.now(UTC) + timedelta(days=2)).isoformat()
PAST = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()

CASES: list[tuple[str, dict[str, Any], str]] = [
    ("zero quantity", {"quantity": 0}, "invalid-quantity"),
    ("huge quantity", {"quantity": 10**13}, "invalid-quantity"),
    ("zero price", {"limit_price": {"amount": "0", "currency": "USD"}}, "invalid-price"),
    ("negative price", {"limit_price": {"amount": "-1", "currency": "USD"}}, "invalid-price"),
    ("huge price", {"limit_price": {"amount": "1000000001", "currency": "USD"}}, "invalid-price"),
    ("five decimals", {"limit_price": {"amount": "1.00001", "currency": "USD"}}, ""),
    ("other currency", {"limit_price": {"amount": "5", "currency": "EUR"}}, "currency-mismatch"),
    ("min above quantity", {"min_quantity": 11}, "invalid-min-quantity"),
    ("zero min", {"min_quantity": 0}, "invalid-min-quantity"),
    ("gtd without expiry", {"time_in_force": "gtd"}, "invalid-expiry"),
    ("gtd in the past", {"time_in_force": "gtd", "expires_at": PAST}, "invalid-expiry"),
    ("gtc with expiry", {"expires_at": FUTURE}, "invalid-expiry"),
    ("more than held", {"quantity": 101}, "insufficient-shares"),
    ("unknown security", {"security_id": str(uuid.uuid4())}, "unknown-security"),
]


@pytest.mark.parametrize(("case", "change", "problem"), CASES, ids=[c[0] for c in CASES])
async def test_invalid_sell_order_is_rejected_without_side_effects(
    api: httpx.AsyncClient,
    token_for: Headers,
    sessions: SessionFactory,
    case: str,
    change: dict[str, Any],
    problem: str,
) -> None:
    _, security_id = await new_security(sessions)
    seller_id, seller = await seller_with_shares(api, token_for, security_id, 100)
    body = {**order_body(security_id, "sell", 10, "5.00"), **change}
    response = await api.post("/v1/orders", json=body, headers=seller)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith(problem)
    assert await orders_of(sessions, seller_id) == 0
    assert await reserved_outstanding(sessions, seller_id, security_id) == 0
    assert await available(api, seller, security_id) == 100
    assert await marketplace_events_of(sessions, seller_id) == 0


@pytest.mark.parametrize(
    ("policy", "problem"),
    [
        ({"lock_up_until": (date.today() + timedelta(days=30)).isoformat()}, "lock-up-active"),
        ({"minimum_transfer_shares": 50}, "below-minimum-transfer"),
    ],
)
async def test_transfer_policy_refuses_sell_orders(
    api: httpx.AsyncClient, token_for: Headers, sessions: SessionFactory, policy: dict[str, Any], problem: str
) -> None:
    _, security_id = await new_security(sessions, **policy)
    seller_id, seller = await seller_with_shares(api, token_for, security_id, 100)
    response = await api.post("/v1/orders", json=order_body(security_id, "sell", 10, "5.00"), headers=seller)
    assert response.status_code == 422 and response.json()["type"].endswith(problem), response.text
    assert await orders_of(sessions, seller_id) == 0
    assert await reserved_outstanding(sessions, seller_id, security_id) == 0


async def test_untradable_security_refuses_buy_and_sell(
    api: httpx.AsyncClient, token_for: Headers, sessions: SessionFactory
) -> None:
    _, security_id = await new_security(sessions, tradable=False)
    headers = token_for(uuid.uuid4(), Role.INVESTOR)
    for side in ("buy", "sell"):
        response = await api.post("/v1/orders", json=order_body(security_id, side, 10, "5.00"), headers=headers)
        assert response.status_code == 422 and response.json()["type"].endswith("security-not-tradable")


async def test_buyer_without_kyc_and_accreditation_is_not_eligible(
    api: httpx.AsyncClient, token_for: Headers, sessions: SessionFactory
) -> None:
    _, security_id = await new_security(sessions)
    user_id = uuid.uuid4()
    response = await api.post(
        "/v1/orders", json=order_body(security_id, "buy", 10, "5.00"), headers=token_for(user_id, Role.INVESTOR)
    )
    assert response.status_code == 422 and response.json()["type"].endswith("buyer-not-eligible"), response.text
    assert await orders_of(sessions, user_id) == 0
    assert await marketplace_events_of(sessions, user_id) == 0


async def test_roles_without_order_permission_cannot_place_orders(
    api: httpx.AsyncClient, token_for: Headers, sessions: SessionFactory
) -> None:
    _, security_id = await new_security(sessions)
    body = order_body(security_id, "buy", 10, "5.00")
    assert (await api.post("/v1/orders", json=body)).status_code == 401
    issuer = token_for(uuid.uuid4(), Role.ISSUER)
    assert (await api.post("/v1/orders", json=body, headers=issuer)).status_code == 403
