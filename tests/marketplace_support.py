"""Test data for the marketplace: a listed security, sellers with verified shares, eligible buyers."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import func, select, text
from sqlmodel import col

from models.marketplace import Order, Trade
from pap.db import SessionFactory, transaction
from services.identity.permissions import Role
from tests.factories import register_and_login

Headers = Callable[..., dict[str, str]]


def order_body(security_id: uuid.UUID, side: str, quantity: int, price: str, **extra: Any) -> dict[str, Any]:
    return {
        "security_id": str(security_id),
        "side": side,
        "quantity": quantity,
        "limit_price": {"amount": price, "currency": "USD"},
        "time_in_force": "gtc",
        **extra,
    }


async def seller_with_shares(
    api: httpx.AsyncClient, token_for: Headers, security_id: uuid.UUID, quantity: int
) -> tuple[uuid.UUID, dict[str, str]]:
    """An investor (a registered user: the deal a trade opens renders documents naming them) who declared
    `quantity` shares, verified by compliance, through the API."""
    seller = await register_and_login(api, full_name="Sam Seller")
    user_id, headers = seller.id, seller.headers
    holding = await api.post(
        "/v1/holdings", json={"security_id": str(security_id), "quantity": quantity}, headers=headers
    )
    assert holding.status_code == 201, holding.text
    verified = await api.post(
        f"/v1/holdings/{holding.json()['id']}/verify", headers=token_for(uuid.uuid4(), Role.COMPLIANCE)
    )
    assert verified.status_code == 200, verified.text
    return user_id, headers


async def place(api: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post("/v1/orders", json=body, headers=headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def get_order(api: httpx.AsyncClient, headers: dict[str, str], order_id: str) -> dict[str, Any]:
    response = await api.get(f"/v1/orders/{order_id}", headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def available(api: httpx.AsyncClient, headers: dict[str, str], security_id: uuid.UUID) -> int:
    page = await api.get("/v1/holdings", params={"security_id": str(security_id)}, headers=headers)
    assert page.status_code == 200, page.text
    return sum(int(h["available_quantity"]) for h in page.json()["items"])


async def reserved_outstanding(sessions: SessionFactory, owner_id: uuid.UUID, security_id: uuid.UUID) -> int:
    async with transaction(sessions) as session:
        value = (
            await session.execute(
                text(
                    "select coalesce(sum(quantity - released_quantity - consumed_quantity), 0) "
                    "from holdings.reservation where owner_id = :o and security_id = :s"
                ),
                {"o": owner_id, "s": security_id},
            )
        ).scalar_one()
    return int(value)


async def marketplace_events_of(sessions: SessionFactory, user_id: uuid.UUID) -> int:
    """Outbox rows of marketplace order events about this user's orders."""
    async with transaction(sessions) as session:
        value = (
            await session.execute(
                text(
                    "select count(*) from platform.outbox_event "
                    "where type like 'marketplace.order.%' and data->>'user_id' = :u"
                ),
                {"u": str(user_id)},
            )
        ).scalar_one()
    return int(value)


async def orders_of(sessions: SessionFactory, user_id: uuid.UUID) -> int:
    async with transaction(sessions) as session:
        count = (
            await session.execute(select(func.count()).select_from(Order).where(col(Order.user_id) == user_id))
        ).scalar_one()
    return int(count)


async def trades_of_security(sessions: SessionFactory, security_id: uuid.UUID) -> list[Trade]:
    async with transaction(sessions) as session:
        return list((await session.execute(select(Trade).where(col(Trade.security_id) == security_id))).scalars())
