"""Pricing endpoints: price history, company metrics and the reference price (cached briefly in Redis)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import TypeAdapter

from api.auth import CurrentUser
from api.deps import RedisDep, SessionDep
from models.pricing import Candle, CompanyMetrics, ReferencePrice
from services import companies, pricing
from services.errors import InvalidInput

router = APIRouter(tags=["pricing"])

_CANDLES = TypeAdapter(list[Candle])
_METRICS = TypeAdapter(CompanyMetrics)
_REFERENCE = TypeAdapter(ReferencePrice)


EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
"""Reads look back a year from `as_of`/`from`: an earlier time means nothing here (and year 1 overflows)."""


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidInput(
            f"`{name}` needs a time zone (RFC 3339, e.g. 2026-01-31T00:00:00Z).",
            errors=[{"pointer": f"/query/{name}", "field": name, "detail": "missing time zone"}],
        )
    if value is not None and value < EARLIEST:
        raise InvalidInput(
            f"`{name}` is before {EARLIEST.year}.",
            errors=[{"pointer": f"/query/{name}", "field": name, "detail": f"not before {EARLIEST.date()}"}],
        )
    return value


@router.get("/v1/securities/{security_id}/prices")
async def prices(
    security_id: uuid.UUID,
    principal: CurrentUser,
    session: SessionDep,
    redis: RedisDep,
    interval: pricing.Interval = pricing.Interval.DAY,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
) -> list[Candle]:
    """OHLC + volume of closed trades per UTC bucket (decimal strings)."""
    start, end = _aware(start, "from"), _aware(end, "to")
    await companies.get_security(session, security_id)
    params = f"{interval.value}:{start.isoformat() if start else ''}:{end.isoformat() if end else ''}"
    return await pricing.cached(
        redis,
        f"prices:{security_id}",
        [security_id],
        params,
        _CANDLES,
        lambda: pricing.candles(session, security_id, interval, start=start, end=end),
    )


@router.get("/v1/securities/{security_id}/reference-price")
async def reference_price(
    security_id: uuid.UUID, principal: CurrentUser, session: SessionDep, redis: RedisDep, as_of: datetime | None = None
) -> ReferencePrice:
    """The reference price as of a date (default now) with the weighted inputs it used; see docs/pricing.md."""
    as_of = _aware(as_of, "as_of")
    security = await companies.get_security(session, security_id)

    async def compute() -> ReferencePrice:
        return await pricing.reference_price(session, security_id, as_of=as_of, company_id=security.company_id)

    if as_of is None:  # "now" moves every call; cache by the data version only for a short TTL
        return await pricing.cached(redis, f"reference:{security_id}", [security_id], "now", _REFERENCE, compute)
    return await pricing.cached(
        redis, f"reference:{security_id}", [security_id], as_of.isoformat(), _REFERENCE, compute
    )


@router.get("/v1/companies/{company_id}/metrics")
async def company_metrics(
    company_id: uuid.UUID,
    principal: CurrentUser,
    session: SessionDep,
    redis: RedisDep,
    security_id: uuid.UUID | None = None,
) -> CompanyMetrics:
    """Metrics of the company's most traded security (or `security_id`)."""
    company = await companies.get_company(session, company_id)
    ids = [s.id for s in company.securities]
    return await pricing.cached(
        redis,
        f"metrics:{company_id}",
        ids,
        str(security_id or ""),
        _METRICS,
        lambda: pricing.company_metrics(session, company_id, security_id=security_id),
    )
