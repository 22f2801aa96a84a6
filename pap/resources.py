"""The long-lived clients of one process, created once at start and closed at exit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from pap.db import SessionFactory, create_engine, create_session_factory
from pap.redis import create_redis
from pap.settings import Settings
from pap.storage import ObjectStore, create_object_store


@dataclass
class Resources:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    redis: Redis
    store: ObjectStore


@asynccontextmanager
async def open_resources(settings: Settings) -> AsyncIterator[Resources]:
    engine = create_engine(settings.require("database_url"))
    if settings.otlp_endpoint:
        # Statement spans only go somewhere with an exporter; without one the hooks cost
        # about a tenth of a request's CPU for nothing.
        SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine)
    redis = create_redis(settings.require("redis_url"))
    try:
        yield Resources(
            settings=settings,
            engine=engine,
            sessions=create_session_factory(engine),
            redis=redis,
            store=create_object_store(settings),
        )
    finally:
        await redis.aclose()
        await engine.dispose()
