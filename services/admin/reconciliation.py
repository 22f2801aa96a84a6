"""Reconciliation: the payments trial balance plus the holdings share-conservation check, in one report."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import Money
from services import holdings, payments


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
    discrepancies: list[dict[str, Any]]


async def shares_conservation(session: AsyncSession) -> tuple[bool, list[dict[str, Any]]]:
    """Whether trading created or destroyed shares, and where the holdings ledger disagrees with positions."""
    report = await holdings.shares_conservation_report(session)
    return report.shares_conserved, [d.model_dump(mode="json") for d in report.discrepancies]


async def reconciliation_report(session: AsyncSession) -> ReconciliationReport:
    ledger = await payments.trial_balance(session)
    shares_conserved, share_discrepancies = await shares_conservation(session)
    escrows = await payments.open_escrows(session)
    return ReconciliationReport(
        ledger_balanced=ledger.ledger_balanced,
        ledger_total=ledger.ledger_total,
        ledger_totals=ledger.totals,
        open_escrow=[OpenEscrow(deal_id=deal_id, amount=amount) for deal_id, amount in escrows],
        shares_conserved=shares_conserved,
        discrepancies=[{"context": "payments", **d} for d in ledger.discrepancies]
        + [{"context": "holdings", **d} for d in share_discrepancies],
    )
