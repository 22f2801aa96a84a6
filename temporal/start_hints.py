"""A note in Redis that a workflow's start succeeded, so a delayed backstop can skip its own start.

Only a hint: the backstop's start is idempotent (a running workflow is kept, an ended one
never runs again), so a lost or expired note costs one redundant start request, never a
second run. Without it, every order cost the Temporal server two starts.
"""

from __future__ import annotations

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)

HINT_TTL_SECONDS = 86_400
"""Longer than any backstop delay; a backstop later than this just starts again (harmless)."""


def _key(workflow_id: str) -> str:
    return f"pap:workflow-started:{workflow_id}"


async def mark_started(redis: Redis, workflow_id: str) -> None:
    try:
        await redis.set(_key(workflow_id), b"1", ex=HINT_TTL_SECONDS)
    except RedisError as error:
        log.warning("could not note a workflow start", workflow_id=workflow_id, error=repr(error))


async def was_started(redis: Redis, workflow_id: str) -> bool:
    try:
        return bool(await redis.exists(_key(workflow_id)))
    except RedisError as error:
        log.warning("could not read a workflow start note", workflow_id=workflow_id, error=repr(error))
        return False
