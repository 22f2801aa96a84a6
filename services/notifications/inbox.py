"""The in-app inbox: a user's own notifications, newest first, and their read state."""

from __future__ import annotations

import uuid

from sqlalchemy import func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import utcnow
from models.notifications import Notification, NotificationPage, NotificationRead
from services.errors import NotFound
from services.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor


def _read(row: Notification) -> NotificationRead:
    return NotificationRead(
        id=row.id,
        kind=row.kind,
        category=row.category,
        title=row.title,
        body=row.body,
        read=row.read_at is not None,
        created_at=row.created_at,
    )


async def unread_count(session: AsyncSession, user_id: uuid.UUID) -> int:
    query = (
        select(func.count())
        .select_from(Notification)
        .where(col(Notification.user_id) == user_id, col(Notification.read_at).is_(None))
    )
    return int((await session.exec(query)).one())


async def list_notifications(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    unread_only: bool = False,
) -> NotificationPage:
    limit = max(1, min(limit, MAX_LIMIT))
    query = select(Notification).where(col(Notification.user_id) == user_id)
    if unread_only:
        query = query.where(col(Notification.read_at).is_(None))
    if cursor:
        before_at, before_id = decode_cursor(cursor)
        query = query.where(
            or_(
                col(Notification.created_at) < before_at,
                (col(Notification.created_at) == before_at) & (col(Notification.id) < before_id),
            )
        )
    rows = list(
        (
            await session.exec(
                query.order_by(col(Notification.created_at).desc(), col(Notification.id).desc()).limit(limit + 1)
            )
        ).all()
    )
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return NotificationPage(
        items=[_read(r) for r in page], next_cursor=next_cursor, unread_count=await unread_count(session, user_id)
    )


async def mark_read(session: AsyncSession, user_id: uuid.UUID, notification_id: uuid.UUID) -> NotificationRead:
    """Someone else's notification is reported as missing (404), never as forbidden."""
    row = await session.get(Notification, notification_id, with_for_update=True)
    if row is None or row.user_id != user_id:
        raise NotFound(f"notification {notification_id} does not exist")
    if row.read_at is None:
        row.read_at = utcnow()
        session.add(row)
        await session.flush()
    return _read(row)


async def mark_all_read(session: AsyncSession, user_id: uuid.UUID) -> int:
    result = await session.execute(
        update(Notification)
        .where(col(Notification.user_id) == user_id, col(Notification.read_at).is_(None))
        .values(read_at=utcnow())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
