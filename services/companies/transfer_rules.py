"""Whether a company's rules allow a transfer of its security on a given date."""

from __future__ import annotations

import uuid
from datetime import date

from sqlmodel.ext.asyncio.session import AsyncSession

from models.companies import Company, SecurityRead, TransferPolicy
from services.companies.errors import (
    BelowMinimumTransfer,
    LockUpActive,
    SecurityNotTradable,
    TransferBlackout,
    TransferNotAllowed,
)
from services.companies.queries import load_company, load_security, security_read


async def check_transfer_allowed(
    session: AsyncSession,
    security: uuid.UUID | SecurityRead,
    quantity: int,
    on_date: date,
    *,
    company: Company | None = None,
) -> TransferPolicy:
    """Raise a `TransferNotAllowed` subclass (422) naming the first rule the transfer breaks; else the policy.

    Callers that already read the security (and its company) pass them, which saves loading them again.
    """
    if isinstance(security, uuid.UUID):
        security = security_read(await load_security(session, security))
    if company is None or company.id != security.company_id:
        company = await load_company(session, security.company_id)
    return check_rules(security, company, quantity, on_date)


async def trading_policy(session: AsyncSession, security_id: uuid.UUID, on_date: date) -> TransferPolicy | None:
    """The company's transfer policy if its security may change hands on `on_date`; None while it may not
    (not tradable, locked up, in a blackout). Matching asks this before it creates any trade."""
    security = security_read(await load_security(session, security_id))
    company = await load_company(session, security.company_id)
    try:
        return check_rules(security, company, None, on_date)
    except TransferNotAllowed:
        return None


def check_rules(security: SecurityRead, company: Company, quantity: int | None, on_date: date) -> TransferPolicy:
    """The transfer rules over data already read (`quantity` None skips the minimum size); returns the policy."""
    if not security.tradable:
        raise SecurityNotTradable(f"{security.class_name} is not open for secondary transfers.")
    policy = TransferPolicy.model_validate(company.transfer_policy)
    if policy.lock_up_until is not None and on_date < policy.lock_up_until:
        raise LockUpActive(
            f"Shares of {company.name} are locked up until {policy.lock_up_until.isoformat()}.",
            lock_up_until=policy.lock_up_until.isoformat(),
        )
    for window in policy.blackout_windows:
        if window.covers(on_date):
            raise TransferBlackout(
                f"{company.name} allows no transfers from {window.start_date} to {window.end_date}.",
                start_date=window.start_date.isoformat(),
                end_date=window.end_date.isoformat(),
            )
    minimum = policy.minimum_transfer_shares
    if minimum is not None and quantity is not None and quantity < minimum:
        raise BelowMinimumTransfer(
            f"{company.name} requires at least {minimum} shares per transfer.",
            minimum_transfer_shares=minimum,
            errors=[{"pointer": "/body/quantity", "field": "quantity", "detail": f"must be at least {minimum}"}],
        )
    return policy
