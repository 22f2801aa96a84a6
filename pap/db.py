"""The async SQLAlchemy engine and unit-of-work sessions (services never commit; boundaries do)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Result, Table, TextClause, bindparam, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine.interfaces import BindTyping
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

SessionFactory = async_sessionmaker[AsyncSession]
_NAMED_PARAMS = postgresql.dialect(paramstyle="named")  # type: ignore[no-untyped-call]
_NAMED_PARAMS.bind_typing = BindTyping.NONE  # no `::UUID` casts: asyncpg learns the types when it prepares


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"server_settings": {"application_name": "pap"}},
    )


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


_AFTER_COMMIT = "pap.after_commit"


@asynccontextmanager
async def transaction(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """One explicit transaction: committed when the block ends, rolled back on any error.

    Actions registered with `after_commit` run once the commit has succeeded.
    """
    async with factory() as session:
        async with session.begin():
            yield session
        for action in session.info.pop(_AFTER_COMMIT, []):
            await action()


@asynccontextmanager
async def snapshot(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """A read-only transaction whose every query sees one snapshot (REPEATABLE READ): for reports that add up
    several tables, which under READ COMMITTED could each see a different moment and disagree."""
    async with factory() as session, session.begin():
        await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        yield session


def after_commit(session: AsyncSession, action: Callable[[], Awaitable[None]]) -> None:
    """Run `action` when `session`'s transaction (opened by `transaction`) commits; never if it rolls back.

    For telling the world outside the database (a cache) about a change only others can now read.
    """
    session.info.setdefault(_AFTER_COMMIT, []).append(action)


async def lock_for_transaction(session: AsyncSession, key: str) -> None:
    """Serialize transactions on `key` (a transaction-scoped advisory lock, released at commit or rollback)."""
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})


async def lock_shared_for_transaction(session: AsyncSession, key: str) -> None:
    """Share `key` with other sharers; waits only for a transaction holding it with `lock_for_transaction`."""
    await session.execute(text("SELECT pg_advisory_xact_lock_shared(hashtextextended(:key, 0))"), {"key": key})


async def try_lock_for_transaction(session: AsyncSession, key: str) -> bool:
    """Like `lock_for_transaction`, but False at once when another transaction holds `key`."""
    locked = await session.scalar(text("SELECT pg_try_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})
    return bool(locked)


async def insert_unless_conflict(
    session: AsyncSession,
    model: type[SQLModel],
    values: Mapping[str, Any],
    *,
    constraint: str | None = None,
    index_elements: tuple[str, ...] | None = None,
    returning: str | None = None,
) -> Result[Any]:
    """`INSERT … ON CONFLICT DO NOTHING [RETURNING returning]`: the idempotent write of dedup and receipt rows.

    SQLAlchemy gives PostgreSQL's ON CONFLICT inserts no cache key, so it compiled them again on every
    execution (about half a millisecond of CPU each, on every consumed event); this renders the SQL once
    per table, column set and conflict target.
    """
    sql = _insert_unless_conflict_sql(model, tuple(values), constraint, index_elements, returning)
    return await session.execute(sql, dict(values))


@functools.cache
def _insert_unless_conflict_sql(
    model: type[SQLModel],
    columns: tuple[str, ...],
    constraint: str | None,
    index_elements: tuple[str, ...] | None,
    returning: str | None,
) -> TextClause:
    table: Table = model.__table__  # type: ignore[attr-defined]
    statement = (
        postgresql.insert(table)
        .values({name: bindparam(name) for name in columns})
        .on_conflict_do_nothing(constraint=constraint, index_elements=index_elements)
    )
    final = statement if returning is None else statement.returning(table.c[returning])
    return text(str(final.compile(dialect=_NAMED_PARAMS)))
