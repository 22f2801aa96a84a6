"""Notifications endpoints: the caller's inbox and preferences, and the sandbox SMS provider outside production."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status
from pydantic import BaseModel, Field

from api.auth import CurrentUser
from api.deps import RedisDep, SessionDep, SettingsDep
from models.base import utcnow
from models.notifications import NotificationPage, NotificationRead, Preferences, PreferencesUpdate, UnreadCount
from services import notifications
from services.errors import NotFound
from services.pagination import DEFAULT_LIMIT, MAX_LIMIT

router = APIRouter(prefix="/v1/notifications", tags=["notifications"])


@router.get("")
async def list_notifications(
    principal: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    unread: bool = False,
) -> NotificationPage:
    """The caller's notifications, newest first."""
    return await notifications.list_notifications(
        session, principal.user_id, limit=limit, cursor=cursor, unread_only=unread
    )


@router.get("/unread-count")
async def unread_count(principal: CurrentUser, session: SessionDep) -> UnreadCount:
    return UnreadCount(unread_count=await notifications.unread_count(session, principal.user_id))


@router.post("/read-all")
async def read_all(principal: CurrentUser, session: SessionDep) -> dict[str, int]:
    marked = await notifications.mark_all_read(session, principal.user_id)
    return {"marked": marked, "unread_count": 0}


@router.get("/preferences")
async def get_preferences(principal: CurrentUser, session: SessionDep) -> Preferences:
    return await notifications.get_preferences(session, principal.user_id)


@router.put("/preferences")
async def put_preferences(principal: CurrentUser, session: SessionDep, body: PreferencesUpdate) -> Preferences:
    """Change some categories/channels; turning off security notices by email or in-app is a 422."""
    return await notifications.put_preferences(session, principal.user_id, body)


@router.post("/{notification_id}/read")
async def read(notification_id: uuid.UUID, principal: CurrentUser, session: SessionDep) -> NotificationRead:
    """Mark one of the caller's notifications read; another user's is a 404."""
    return await notifications.mark_read(session, principal.user_id, notification_id)


# --- the sandbox SMS provider: a stand-in for a hosted SMS API, over HTTP like the real one ---

SANDBOX_SMS_KEY = "sandbox:sms:messages"
SANDBOX_SMS_KEEP = 10_000


async def _not_in_production(settings: SettingsDep) -> None:
    if settings.is_production:
        raise NotFound("There is no sandbox in production.")


sandbox_router = APIRouter(prefix="/v1/sandbox/sms", tags=["sandbox"], dependencies=[Depends(_not_in_production)])


class SmsSend(BaseModel):
    to: str = Field(pattern=r"^\+?[0-9 ()-]{5,31}$")
    body: str = Field(min_length=1, max_length=1600)


class SmsMessage(SmsSend):
    id: uuid.UUID
    status: str
    created_at: str


@sandbox_router.post("/messages", status_code=status.HTTP_201_CREATED)
async def sandbox_send(body: SmsSend, redis: RedisDep) -> SmsMessage:
    """Accept a text (kept in Redis so every API process sees it); Idempotency-Key replays come from the middleware."""
    message = SmsMessage(
        id=uuid.uuid4(), to=body.to, body=body.body, status="delivered", created_at=utcnow().isoformat()
    )
    await redis.lpush(SANDBOX_SMS_KEY, message.model_dump_json())
    await redis.ltrim(SANDBOX_SMS_KEY, 0, SANDBOX_SMS_KEEP - 1)
    return message


@sandbox_router.get("/messages")
async def sandbox_messages(
    redis: RedisDep, to: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, Any]:
    """Texts sent through the sandbox, newest first, optionally to one number."""
    raw = await redis.lrange(SANDBOX_SMS_KEY, 0, SANDBOX_SMS_KEEP - 1)
    items = [json.loads(r) for r in raw]
    if to is not None:
        items = [m for m in items if m["to"] == to]
    return {"items": items[:limit], "next_cursor": None}
