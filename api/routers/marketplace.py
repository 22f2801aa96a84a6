"""`/v1/orders`, `/v1/securities/{id}/book`, `/v1/listings`: placing and managing orders, reading the market."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Query, status

from api.auth import CurrentUser, require
from api.deps import RedisDep, SessionDep, SessionsDep, SettingsDep, TemporalDep
from models.marketplace import (
    AmendOrderInput,
    CancelOrderInput,
    ListingPage,
    OrderBook,
    OrderCreate,
    OrderPage,
    OrderRead,
    OrderStatus,
    OrderUpdate,
)
from pap.db import transaction
from services import companies, marketplace
from services.identity.permissions import Permission
from services.identity.tokens import Principal
from services.marketplace.after_commit import after_commit
from services.pagination import DEFAULT_LIMIT, MAX_LIMIT
from temporal.ids import order_workflow_id
from temporal.order_updates import change_order
from temporal.start_hints import mark_started
from temporal.starters import start_lifecycle

log = structlog.get_logger(__name__)
router = APIRouter(tags=["marketplace"])
Trader = Annotated[Principal, Depends(require(Permission.ORDERS_PLACE))]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=500)]


@router.post("/v1/orders", status_code=status.HTTP_201_CREATED)
async def place_order(
    body: OrderCreate,
    principal: Trader,
    sessions: SessionsDep,
    client: TemporalDep,
    redis: RedisDep,
    settings: SettingsDep,
) -> OrderRead:
    async with transaction(sessions) as session:
        outcome = await marketplace.place_order(session, principal.user_id, body)

    async def start() -> None:
        await start_lifecycle(client, outcome.order, settings.task_queue)
        await mark_started(redis, order_workflow_id(outcome.order.id))  # the backstop need not start it again

    try:
        await asyncio.gather(start(), after_commit(client, outcome, task_queue=settings.task_queue))
    except Exception:  # the order is saved: a retry must not place it twice; the outbox backstops finish this
        log.warning(
            "order placed; its workflow or deals are left to the backstops",
            order_id=str(outcome.order.id),
            exc_info=True,
        )
    return outcome.order


@router.get("/v1/orders")
async def list_orders(
    principal: CurrentUser,
    session: SessionDep,
    status: OrderStatus | None = None,
    security_id: uuid.UUID | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> OrderPage:
    return await marketplace.list_orders(
        session, principal, status=status, security_id=security_id, limit=limit, cursor=cursor
    )


@router.get("/v1/orders/{order_id}")
async def get_order(order_id: uuid.UUID, principal: CurrentUser, session: SessionDep) -> OrderRead:
    return await marketplace.get_order_for(session, principal, order_id)


async def _owned_live_order(sessions: SessionsDep, principal: Principal, order_id: uuid.UUID, action: str) -> OrderRead:
    async with transaction(sessions) as session:
        order = await marketplace.get_order(session, order_id)
    if order.user_id != principal.user_id:
        raise marketplace.OrderNotFound(f"No order {order_id}.")
    if order.status not in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED):
        error = marketplace.OrderNotCancellable if action == "cancel" else marketplace.OrderNotAmendable
        raise error(f"The order is {order.status.value}.", order_status=order.status.value)
    return order


@router.post("/v1/orders/{order_id}/cancel")
async def cancel_order(
    order_id: uuid.UUID, principal: CurrentUser, sessions: SessionsDep, client: TemporalDep, settings: SettingsDep
) -> OrderRead:
    order = await _owned_live_order(sessions, principal, order_id, "cancel")
    return await change_order(
        client, order, settings.task_queue, "cancel", CancelOrderInput(order_id=order_id, user_id=principal.user_id)
    )


@router.patch("/v1/orders/{order_id}")
async def amend_order(
    order_id: uuid.UUID,
    body: OrderUpdate,
    principal: CurrentUser,
    sessions: SessionsDep,
    client: TemporalDep,
    settings: SettingsDep,
) -> OrderRead:
    order = await _owned_live_order(sessions, principal, order_id, "amend")
    changes = body.model_dump(exclude_unset=True)
    request = AmendOrderInput(order_id=order_id, user_id=principal.user_id, **changes)
    return await change_order(client, order, settings.task_queue, "amend", request)


@router.get("/v1/securities/{security_id}/book")
async def order_book(security_id: uuid.UUID, _: CurrentUser, session: SessionDep) -> OrderBook:
    await companies.get_security(session, security_id)
    return await marketplace.order_book(session, security_id)


@router.get("/v1/listings")
async def list_listings(
    _: CurrentUser,
    session: SessionDep,
    company_id: uuid.UUID | None = None,
    sector: Annotated[str | None, Query(max_length=100)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> ListingPage:
    return await marketplace.list_listings(
        session, company_id=company_id, sector=sector, q=q, limit=limit, cursor=cursor
    )
