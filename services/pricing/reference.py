"""The reference price of a security: a weighted blend of stored market evidence, reproducible as of any date.

Methodology (also in docs/pricing.md), in the spirit of Forge Price:

1. Inputs are rows stored by the pricing consumer with `at <= as_of` and no older
   than `LOOKBACK` (365 days). Nothing else is read, so the same `as_of` always
   gives the same answer, whatever arrived later.
2. Each source has a hierarchy weight S and a recency half-life H:

   | source        | S    | H        | inputs used                              |
   |---------------|------|----------|------------------------------------------|
   | closed_trade  | 1.00 | 30 days  | up to 100 latest settled-deal prints     |
   | matched_trade | 0.50 | 14 days  | up to 100 latest marketplace matches     |
   | quote_mid     | 0.25 | 3 days   | latest book snapshot with bid below ask  |
   | last_round    | 0.10 | 180 days | latest funding-round price (security, else company) |

3. A print i of a source gets weight  w_i = S * 2^(-age_i / H) * q_i / Q, where
   age_i = as_of - at_i and Q is the total quantity of that source's inputs (so
   within a source prints are volume-weighted, and a source's weight never
   exceeds S). The midpoint and the round price count as one input with q/Q = 1.
4. price = sum(w_i * p_i) / sum(w_i), rounded to 4 decimal places; no inputs -> null.

All arithmetic is `Decimal` (28 digits), so results are bit-for-bit reproducible.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import Money, utcnow
from models.pricing import PricePrint, PrintSource, Quote, ReferenceInput, ReferencePrice, RoundPrice

LOOKBACK = timedelta(days=365)
MAX_PRINTS_PER_SOURCE = 100
METHOD = "hierarchy-recency-weighted-v1"
QUANTUM = Decimal("0.0001")
WEIGHT_QUANTUM = Decimal("1e-10")
LN2 = Decimal(2).ln()
SECONDS_PER_DAY = Decimal(86400)


@dataclass(frozen=True)
class SourceRule:
    weight: Decimal
    half_life_days: Decimal


RULES: dict[str, SourceRule] = {
    PrintSource.CLOSED_TRADE.value: SourceRule(Decimal("1.00"), Decimal(30)),
    PrintSource.MATCHED_TRADE.value: SourceRule(Decimal("0.50"), Decimal(14)),
    "quote_mid": SourceRule(Decimal("0.25"), Decimal(3)),
    "last_round": SourceRule(Decimal("0.10"), Decimal(180)),
}


@dataclass(frozen=True)
class Observation:
    source: str
    price: Decimal
    quantity: int | None
    at: datetime
    currency: str


def decay(rule: SourceRule, age: timedelta) -> Decimal:
    """2^(-age/H), computed in Decimal as exp(-ln2 * age / H)."""
    days = Decimal(int(age.total_seconds() * 1_000_000)) / Decimal(1_000_000) / SECONDS_PER_DAY
    return (-(LN2 * max(days, Decimal(0)) / rule.half_life_days)).exp()


def blend(observations: list[Observation], as_of: datetime) -> tuple[Decimal | None, list[ReferenceInput]]:
    """The weighted price of the observations (see the module docstring) and each input with its weight."""
    totals: dict[str, int] = {}
    for o in observations:
        totals[o.source] = totals.get(o.source, 0) + (o.quantity or 1)
    weighted, weight_sum, inputs = Decimal(0), Decimal(0), []
    for o in observations:
        rule = RULES[o.source]
        share = Decimal(o.quantity or 1) / Decimal(totals[o.source])
        weight = rule.weight * decay(rule, as_of - o.at) * share
        weighted += weight * o.price
        weight_sum += weight
        inputs.append(
            ReferenceInput(
                source=o.source,
                price=format(o.price, "f"),
                quantity=o.quantity,
                at=o.at,
                weight=format(weight.quantize(WEIGHT_QUANTUM), "f"),
            )
        )
    if weight_sum == 0:
        return None, inputs
    return (weighted / weight_sum).quantize(QUANTUM), inputs


async def observations(
    session: AsyncSession, security_id: uuid.UUID, as_of: datetime, company_id: uuid.UUID | None = None
) -> list[Observation]:
    """The stored inputs of the methodology as of `as_of` (indexed reads only)."""
    since = as_of - LOOKBACK
    out: list[Observation] = []
    for source in (PrintSource.CLOSED_TRADE, PrintSource.MATCHED_TRADE):
        prints = await session.exec(
            select(PricePrint)
            .where(
                col(PricePrint.security_id) == security_id,
                col(PricePrint.source) == source.value,
                col(PricePrint.at) <= as_of,
                col(PricePrint.at) > since,
            )
            .order_by(col(PricePrint.at).desc(), col(PricePrint.id).desc())
            .limit(MAX_PRINTS_PER_SOURCE)
        )
        out.extend(Observation(p.source, p.price, p.quantity, p.at, p.currency) for p in prints.all())
    quote = await latest_quote(session, security_id, as_of)
    # A crossed or locked book (one user's own bid and ask both rest) has no meaningful midpoint.
    if (
        quote is not None
        and quote.at > since
        and quote.bid is not None
        and quote.ask is not None
        and quote.bid < quote.ask
    ):
        mid = ((quote.bid + quote.ask) / 2).quantize(QUANTUM)
        out.append(Observation("quote_mid", mid, None, quote.at, quote.currency))
    round_price = await latest_round(session, security_id, as_of, company_id)
    if round_price is not None and round_price.at > since:
        out.append(Observation("last_round", round_price.price, None, round_price.at, round_price.currency))
    return out


async def latest_quote(session: AsyncSession, security_id: uuid.UUID, as_of: datetime) -> Quote | None:
    rows = await session.exec(
        select(Quote)
        .where(col(Quote.security_id) == security_id, col(Quote.at) <= as_of)
        .order_by(col(Quote.at).desc(), col(Quote.created_at).desc())
        .limit(1)
    )
    return rows.first()


async def latest_round(
    session: AsyncSession, security_id: uuid.UUID, as_of: datetime, company_id: uuid.UUID | None
) -> RoundPrice | None:
    """The security's own last round price, else the company's latest funding round."""
    own = (
        await session.exec(
            select(RoundPrice)
            .where(col(RoundPrice.security_id) == security_id, col(RoundPrice.at) <= as_of)
            .order_by(col(RoundPrice.at).desc())
            .limit(1)
        )
    ).first()
    if own is not None or company_id is None:
        return own
    return (
        await session.exec(
            select(RoundPrice)
            .where(
                col(RoundPrice.company_id) == company_id,
                col(RoundPrice.security_id).is_(None),
                col(RoundPrice.at) <= as_of,
            )
            .order_by(col(RoundPrice.at).desc())
            .limit(1)
        )
    ).first()


async def reference_price(
    session: AsyncSession, security_id: uuid.UUID, *, as_of: datetime | None = None, company_id: uuid.UUID | None = None
) -> ReferencePrice:
    """The reference price as of `as_of` (default now) with the inputs it used."""
    as_of = as_of or utcnow()
    found = await observations(session, security_id, as_of, company_id)
    price, inputs = blend(found, as_of)
    currency = max(found, key=lambda o: o.at).currency if found else "USD"
    return ReferencePrice(
        security_id=security_id,
        price=Money(amount=price, currency=currency) if price is not None else None,
        as_of=as_of,
        method=METHOD,
        inputs=inputs,
    )
