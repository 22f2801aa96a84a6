"""Announcing that a deal's projection changed, so waiting readers (HTTP long polls) re-read it.

Every write to a deal row or its timeline calls `announce` in the same transaction:
the NOTIFY is delivered on commit only, when the change is visible to readers.
"""

from __future__ import annotations

import uuid

from sqlmodel.ext.asyncio.session import AsyncSession

from pap.pg_notify import notify

CHANNEL = "pap_deal_changed"
"""Payload: the deal's id."""


async def announce(session: AsyncSession, deal_id: uuid.UUID) -> None:
    await notify(session, CHANNEL, str(deal_id))
