"""Test data for the companies and holdings contexts, created through the services in their own transactions."""

from __future__ import annotations

import uuid
from typing import Any

from models.companies import CompanyCreate, SecurityCreate, SecurityKind, TransferPolicy
from models.holdings import HoldingCreate
from pap.db import SessionFactory, transaction
from services import companies, holdings
from services.identity.permissions import Role
from services.identity.tokens import Principal

COMPLIANCE = Principal(user_id=uuid.uuid4(), roles=frozenset({Role.COMPLIANCE}), mfa=True)


async def new_security(
    sessions: SessionFactory, *, tradable: bool = True, **policy: Any
) -> tuple[uuid.UUID, uuid.UUID]:
    """A fresh company with one security; returns (company_id, security_id)."""
    async with transaction(sessions) as session:
        company = await companies.create_company(
            session,
            CompanyCreate(
                name=f"Co {uuid.uuid4().hex[:8]}",
                legal_name="Test Co, Inc.",
                jurisdiction="US-DE",
                sector="testing",
                fully_diluted_shares=10_000_000,
                transfer_policy=TransferPolicy(**policy),
            ),
        )
        security = await companies.create_security(
            session, company.id, SecurityCreate(class_name="Common", kind=SecurityKind.COMMON, tradable=tradable)
        )
    return company.id, security.id


async def verified_lot(
    sessions: SessionFactory, owner_id: uuid.UUID, security_id: uuid.UUID, quantity: int
) -> uuid.UUID:
    async with transaction(sessions) as session:
        holding = await holdings.submit_holding(
            session, owner_id, HoldingCreate(security_id=security_id, quantity=quantity)
        )
        await holdings.verify_holding(session, COMPLIANCE, holding.id)
    return holding.id
