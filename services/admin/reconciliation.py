"""Reconciliation: the payments trial balance, the holdings share-conservation check and the marketplace's
order fills, in one report."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import Money
from services import holdings, payments
from services.marketplace.reports import fill_discrepancies


class OpenEscrow(BaseModel):
    deal_id: uuid.UUID
    amount: Money


class ReconciliationReport(BaseModel):
    ledger_balanced: bool
    """True only when the ledger balances in every currency."""
    ledger_total: Money
    """The posted sum in USD; `ledger_totals` has every currency's."""
    ledger_totals: dict[str, Decimal]
    open_escrow: list[OpenEscrow]
    shares_conserved: bool
    fills_consistent: bool
    """True when every order's filled quantity is the sum of its active fills."""
    discrepancies: list[dict[str, Any]]


async def shares_conservation(session: AsyncSession) -> tuple[bool, list[dict[str, Any]]]:
    """Whether trading created or destroyed shares, and where the holdings ledger disagrees with positions."""
    report = await holdings.shares_conservation_report(session)
    return report.shares_conserved, [d.model_dump(mode="json") for d in report.discrepancies]


async def reconciliation_report(session: AsyncSession) -> ReconciliationReport:
    ledger = await payments.trial_balance(session)
    shares_conserved, share_discrepancies = await shares_conservation(session)
    escrows = await payments.open_escrows(session)
    fills = await fill_discrepancies(session)
    return ReconciliationReport(
        ledger_balanced=ledger.ledger_balanced,
        ledger_total=ledger.ledger_total,
        ledger_totals=ledger.totals,
        open_escrow=[OpenEscrow(deal_id=deal_id, amount=amount) for deal_id, amount in escrows],
        shares_conserved=shares_conserved,
        fills_consistent=not fills,
        discrepancies=[{"context": "payments", **d} for d in ledger.discrepancies]
        + [{"context": "holdings", **d} for d in share_discrepancies]
        + [{"context": "marketplace", "kind": "order-fills", **d.model_dump(mode="json")} for d in fills],
    )
