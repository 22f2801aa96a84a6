"""Deals survive a crashing worker: every deal still closes, and money and shares move exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import func
from sqlmodel import col, select

from models.payments import JournalEntry
from pap.db import SessionFactory
from pap.stack.embedded import EmbeddedStack
from services import holdings
from tests.deal_support import Parties, TokenFor, deal_request, parties
from tests.support import eventually
from tests.test_deals_e2e import drive_to_closed


async def stage_of(api: httpx.AsyncClient, deal_id: str, headers: dict[str, str]) -> str:
    return str((await api.get(f"/v1/deals/{deal_id}", headers=headers)).json()["stage"])


async def test_killing_the_worker_mid_deal_never_pays_or_transfers_twice(
    api: httpx.AsyncClient, sessions: SessionFactory, token_for: TokenFor, platform: EmbeddedStack
) -> None:
    people: list[Parties] = [await parties(api, sessions, token_for) for _ in range(3)]
    deal_ids: list[str] = []
    for p in people:
        created = await api.post(
            "/v1/deals",
            json=deal_request(p, quantity=10, price="7.50"),
            headers=p.manager,
        )
        assert created.status_code == 201, created.text
        deal_ids.append(created.json()["id"])

    async def chaos() -> int:
        """Kill the worker (SIGKILL, its whole process group) as deals reach each later stage."""
        kills = 0
        for stage in ("awaiting_signatures", "awaiting_funding", "settling"):
            await eventually(
                lambda stage=stage: asyncio.gather(
                    *(stage_of(api, d, p.manager) for d, p in zip(deal_ids, people, strict=True))
                ),  # type: ignore[misc]
                lambda stages, stage=stage: stage in stages,  # type: ignore[misc]
                timeout=120,
                what=f"a deal at {stage}",
            )
            await platform.supervisor.kill("worker")
            await platform.supervisor.restart("worker")
            kills += 1
        return kills

    closed, kills = await asyncio.gather(
        asyncio.gather(*(drive_to_closed(api, d, p) for d, p in zip(deal_ids, people, strict=True))), chaos()
    )
    assert kills == 3
    assert [deal["stage"] for deal in closed] == ["closed"] * 3

    async with sessions() as session:
        for deal_id, p in zip(deal_ids, people, strict=True):
            releases = await session.scalar(
                select(func.count())
                .select_from(JournalEntry)
                .where(col(JournalEntry.kind) == "escrow.release", col(JournalEntry.reference) == deal_id)
            )
            assert releases == 1
            assert await holdings.available_shares(session, p.buyer.id, p.security_id) == 10
            assert await holdings.available_shares(session, p.seller.id, p.security_id) == 990
    report: dict[str, Any] = (await api.get("/v1/admin/reconciliation", headers=people[0].compliance)).json()
    assert report["ledger_balanced"] and report["shares_conserved"]
    assert not {e["deal_id"] for e in report["open_escrow"]} & set(deal_ids)
