"""Compliance exports: trades and deal histories in a date range, as JSON rows or CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from services import deals, marketplace

TRADE_COLUMNS = [
    "trade_id",
    "deal_id",
    "matched_at",
    "security_id",
    "company_id",
    "buyer_id",
    "seller_id",
    "quantity",
    "price_amount",
    "price_currency",
    "status",
    "closed_at",
]
DEAL_COLUMNS = [
    "deal_id",
    "created_at",
    "stage",
    "source",
    "security_id",
    "company_id",
    "buyer_id",
    "seller_id",
    "quantity",
    "price_amount",
    "currency",
    "on_hold",
    "cancel_reason",
    "closed_at",
    "timeline",
]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def trade_rows(session: AsyncSession, start: datetime | None, end: datetime | None) -> list[dict[str, Any]]:
    return [
        {
            "trade_id": str(t.id),
            "deal_id": str(t.deal_id),
            "matched_at": _iso(t.matched_at),
            "security_id": str(t.security_id),
            "company_id": str(t.company_id),
            "buyer_id": str(t.buyer_id),
            "seller_id": str(t.seller_id),
            "quantity": t.quantity,
            "price_amount": str(t.price_amount),
            "price_currency": t.price_currency,
            "status": t.status,
            "closed_at": _iso(t.closed_at),
        }
        for t in await marketplace.trades_between(session, start, end)
    ]


async def deal_rows(session: AsyncSession, start: datetime | None, end: datetime | None) -> list[dict[str, Any]]:
    """One row per deal with its whole timeline (a list in JSON, `at stage actor: detail` lines in CSV)."""
    rows: list[dict[str, Any]] = []
    for d in await deals.deals_created_between(session, start, end):
        timeline = [
            {"at": _iso(e.at), "stage": e.stage, "actor": e.actor, "detail": e.detail}
            for e in await deals.timeline(session, d.id)
        ]
        rows.append(
            {
                "deal_id": str(d.id),
                "created_at": _iso(d.created_at),
                "stage": d.stage,
                "source": d.source,
                "security_id": str(d.security_id),
                "company_id": str(d.company_id),
                "buyer_id": str(d.buyer_id),
                "seller_id": str(d.seller_id),
                "quantity": d.quantity,
                "price_amount": str(d.price_amount),
                "currency": d.currency,
                "on_hold": d.on_hold,
                "cancel_reason": d.cancel_reason,
                "closed_at": _iso(d.closed_at),
                "timeline": timeline,
            }
        )
    return rows


def _cell(value: Any) -> Any:
    if isinstance(value, list):
        return "\n".join(f"{e['at']} {e['stage']} {e['actor']}: {e['detail']}" for e in value)
    return "" if value is None else value


def csv_lines(columns: list[str], rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """The header row, then one CSV record per row, each yielded as it is written (for streaming)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    yield buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([_cell(row.get(c)) for c in columns])
        yield buffer.getvalue()
