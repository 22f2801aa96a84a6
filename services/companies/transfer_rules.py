"""Whether a company's rules allow a transfer of its security on a given date."""

from __future__ import annotations

import uuid
from datetime import date

from sqlmodel.ext.asyncio.session import AsyncSession

from models.companies import Company, SecurityRead, TransferPolicy
from services.companies.errors import BelowMinimumTransfer, LockUpActive, SecurityNotTradable, TransferBlackout
from services.companies.queries import load_company, load_security, security_read


async def check_transfer_allowed(
    session: AsyncSession,
    security: uuid.UUID | SecurityRead,
    quantity: int,
    on_date: date,
    *,
    company: Company | None = None,
) -> None:
    """Raise a `TransferNotAllowed` subclass (422) naming the first rule the transfer breaks.

    Callers that already read the security (and its company) pass them, which saves loading them again.
    """
    if isinstance(security, uuid.UUID):
        security = security_read(await load_security(session, security))
    if not security.tradable:
        raise SecurityNotTradable(f"{security.class_name} is not open for secondary transfers.")
    if company is None or company.id != security.company_id:
        company = await load_company(session, security.company_id)
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
    if policy.minimum_transfer_shares is not None and quantity < policy.minimum_transfer_shares:
        raise BelowMinimumTransfer(
            f"{company.name} requires at least {policy.minimum_transfer_shares} shares per transfer.",
            minimum_transfer_shares=policy.minimum_transfer_shares,
            errors=[
                {
                    "pointer": "/body/quantity",
                    "field": "quantity",
                    "detail": f"must be at least {policy.minimum_transfer_shares}",
                }
            ],
        )
