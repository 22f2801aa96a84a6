"""Redis read-through cache for pricing reads, invalidated by a per-security version counter.

A cached value's key embeds the security's current version; storing a new print
or quote bumps the version (one INCR), so stale entries are never read again and
simply expire. Redis being down only costs the cache, never the answer.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from pydantic import BaseModel, TypeAdapter
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)

TTL_SECONDS = 30
T = TypeVar("T")


def _version_key(security_id: uuid.UUID) -> str:
    return f"pricing:version:{security_id}"


async def invalidate(redis: Redis | None, security_id: uuid.UUID) -> None:
    if redis is None:
        return
    try:
        await redis.incr(_version_key(security_id))
    except RedisError as error:
        log.warning("pricing cache invalidation failed", security_id=str(security_id), error=str(error))


async def versions(redis: Redis, security_ids: list[uuid.UUID]) -> str:
    if not security_ids:
        return ""
    values = await redis.mget([_version_key(s) for s in security_ids])
    return ",".join(str(v or 0) for v in values)


async def cached(
    redis: Redis | None,
    name: str,
    security_ids: list[uuid.UUID],
    params: str,
    adapter: TypeAdapter[T],
    compute: Callable[[], Awaitable[T]],
) -> T:
    """The cached value for (name, params, versions of the securities), else `compute()` stored for a short TTL."""
    if redis is None:
        return await compute()
    try:
        key = f"pricing:{name}:{params}:{await versions(redis, security_ids)}"
        hit = await redis.get(key)
        if hit is not None:
            return adapter.validate_json(hit)
    except RedisError as error:
        log.warning("pricing cache read failed", error=str(error))
        return await compute()
    value = await compute()
    try:
        await redis.set(key, adapter.dump_json(value).decode(), ex=TTL_SECONDS)
    except RedisError as error:
        log.warning("pricing cache write failed", error=str(error))
    return value


def dumps(model: BaseModel) -> str:
    return json.dumps(model.model_dump(mode="json"))
