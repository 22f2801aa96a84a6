"""The trial balance: the ledger's own proof that money was neither created nor destroyed.

Posted postings must sum to zero per currency, each entry must balance, every cached
account balance must equal the sum of its postings, and no account that may not go
negative may be below zero. The account check is one SQL statement, so one snapshot.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import Money
from models.payments import ZERO, AccountBalance, TrialBalance

_ACCOUNTS_WITH_SUMS = text(
    """
    WITH sums AS (
        SELECT p.account_id,
               COALESCE(SUM(p.amount) FILTER (WHERE e.status = 'posted'), 0) AS posted,
               COALESCE(SUM(-p.amount) FILTER (WHERE e.status = 'pending' AND p.amount < 0), 0) AS pending_debits,
               COALESCE(SUM(p.amount) FILTER (WHERE e.status = 'pending' AND p.amount > 0), 0) AS pending_credits
        FROM payments.posting p JOIN payments.journal_entry e ON e.id = p.entry_id
        GROUP BY p.account_id
    )
    SELECT a.code, a.currency, a.allow_negative, a.posted_balance, a.pending_debits, a.pending_credits,
           COALESCE(s.posted, 0), COALESCE(s.pending_debits, 0), COALESCE(s.pending_credits, 0)
    FROM payments.account a LEFT JOIN sums s ON s.account_id = a.id
    ORDER BY a.code, a.currency
    """
)

_UNBALANCED_ENTRIES = text(
    """
    SELECT entry_id, currency, SUM(amount) FROM payments.posting
    GROUP BY entry_id, currency HAVING SUM(amount) <> 0
    """
)


async def trial_balance(
    session: AsyncSession, *, include_accounts: bool = False, currency: str = "USD"
) -> TrialBalance:
    """Verify the whole ledger, per (code, currency) account and per currency.

    `ledger_total` is the posted sum in `currency` only; `totals` has every currency's sum, and
    `ledger_balanced` requires each of them to be zero (an unbalanced one is a discrepancy).
    """
    discrepancies: list[dict[str, Any]] = []
    totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
    accounts: list[AccountBalance] = []
    for row in (await session.execute(_ACCOUNTS_WITH_SUMS)).all():
        code, cur, allow_negative, posted, pending_debits, pending_credits, s_posted, s_debits, s_credits = row
        totals[cur] += s_posted
        cached, derived = (posted, pending_debits, pending_credits), (s_posted, s_debits, s_credits)
        if cached != derived:
            discrepancies.append(
                {
                    "kind": "cached-balance-mismatch",
                    "account": code,
                    "currency": cur,
                    "cached": [format(v, "f") for v in cached],
                    "postings": [format(v, "f") for v in derived],
                }
            )
        if not allow_negative and s_posted - s_debits < 0:
            discrepancies.append(
                {
                    "kind": "negative-balance",
                    "account": code,
                    "currency": cur,
                    "available": format(s_posted - s_debits, "f"),
                }
            )
        if include_accounts:
            accounts.append(
                AccountBalance(
                    code=code,
                    currency=cur,
                    posted=posted,
                    pending_debits=pending_debits,
                    pending_credits=pending_credits,
                )
            )
    for cur, total in totals.items():
        if total != 0:
            discrepancies.append({"kind": "unbalanced-currency", "currency": cur, "total": format(total, "f")})
    for entry_id, cur, total in (await session.execute(_UNBALANCED_ENTRIES)).all():
        discrepancies.append(
            {"kind": "unbalanced-entry", "entry_id": str(entry_id), "currency": cur, "total": format(total, "f")}
        )
    return TrialBalance(
        ledger_balanced=not discrepancies,
        ledger_total=Money(amount=totals.get(currency, ZERO), currency=currency),
        totals=dict(totals),
        accounts=accounts,
        discrepancies=discrepancies,
    )
