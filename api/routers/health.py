"""Liveness, readiness (every component checked) and Prometheus metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, text
from sqlmodel import col, select

from api.deps import StateDep
from events.kafka import check_kafka
from events.relay import OUTBOX_LAG, OUTBOX_PARKED_ROWS
from models.platform import OutboxEvent

log = structlog.get_logger(__name__)
router = APIRouter(tags=["operations"])

CHECK_TIMEOUT = 3.0


@router.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/ready", responses={503: {"description": "A component is down"}})
async def ready(state: StateDep) -> JSONResponse:
    resources = state.resources

    async def postgres() -> None:
        async with resources.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def temporal() -> None:
        client = await state.temporal()
        await client.service_client.check_health()

    async def kafka() -> None:
        await check_kafka(resources.settings.require("kafka_bootstrap"), CHECK_TIMEOUT)

    async def redis() -> None:
        await resources.redis.ping()

    checks: dict[str, Callable[[], Awaitable[None]]] = {
        "postgres": postgres,
        "temporal": temporal,
        "kafka": kafka,
        "redis": redis,
        "object_store": resources.store.check,
    }

    async def run(check: Callable[[], Awaitable[None]]) -> str:
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT)
            return "ok"
        except Exception as error:  # readiness reports every failure instead of raising
            return f"error: {type(error).__name__}"

    results = dict(
        zip(
            checks,
            await asyncio.gather(*(run(c) for c in checks.values())),
            strict=True,
        )
    )
    healthy = all(value == "ok" for value in results.values())
    return JSONResponse(results, status_code=200 if healthy else 503)


@router.get("/metrics", response_class=Response)
async def metrics(state: StateDep) -> Response:
    try:
        async with state.resources.sessions() as session:
            parked = col(OutboxEvent.failed_at).is_not(None)
            counts = await session.execute(
                select(func.count().filter(~parked), func.count().filter(parked))
                .select_from(OutboxEvent)
                .where(col(OutboxEvent.published_at).is_(None))
            )
            lag, parked_rows = counts.one()
        OUTBOX_LAG.set(lag)
        OUTBOX_PARKED_ROWS.set(parked_rows)
    except Exception as error:  # metrics must render even when the database is away
        log.warning("outbox lag unavailable", error=repr(error))
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
