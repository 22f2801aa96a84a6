"""The migrations build the schema the models describe (the `alembic check` of the test command)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from models.base import SCHEMAS
from pap.db import SessionFactory
from pap.migrate import check
from pap.settings import Settings


async def test_models_and_migrations_agree(settings: Settings) -> None:
    await asyncio.to_thread(check, settings.require("database_url"))


async def test_every_bounded_context_has_its_own_schema(sessions: SessionFactory) -> None:
    async with sessions() as session:
        rows = await session.execute(text("SELECT schema_name FROM information_schema.schemata"))
        present = {row[0] for row in rows}
    assert set(SCHEMAS) <= present
