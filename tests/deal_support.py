"""Test data for deals: a company, a seller with verified shares, an eligible buyer, and deal rows."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from models.base import Money
from models.deals import Deal, DealWorkflowInput, FrozenTransferPolicy
from pap.db import SessionFactory, transaction
from services import deals, holdings
from services.identity.permissions import Role
from tests.factories import TestUser, make_verified_buyer, register_and_login
from tests.market_support import new_security, verified_lot

TokenFor = Callable[..., dict[str, str]]


@dataclass
class Parties:
    company_id: uuid.UUID
    security_id: uuid.UUID
    seller: TestUser
    buyer: TestUser
    compliance: dict[str, str]
    manager: dict[str, str]
    issuer: dict[str, str]


async def parties(
    api: httpx.AsyncClient, sessions: SessionFactory, token_for: TokenFor, *, shares: int = 1_000, **policy: Any
) -> Parties:
    """A company (with `policy`), a seller holding `shares` verified shares and a KYC'd, accredited buyer."""
    company_id, security_id = await new_security(sessions, **policy)
    compliance = token_for(uuid.uuid4(), Role.COMPLIANCE)
    seller = await register_and_login(api, full_name="Sally Seller")
    await verified_lot(sessions, seller.id, security_id, shares)
    buyer = await make_verified_buyer(api, compliance_headers=compliance)
    return Parties(
        company_id=company_id,
        security_id=security_id,
        seller=seller,
        buyer=buyer,
        compliance=compliance,
        manager=token_for(uuid.uuid4(), Role.DEAL_MANAGER),
        issuer=token_for(uuid.uuid4(), Role.ISSUER, company_id=company_id),
    )


def deal_request(p: Parties, *, quantity: int, price: str = "10.00") -> dict[str, Any]:
    """The body of `POST /v1/deals` for these parties (a deal manager's brokered deal, in USD)."""
    return {
        "security_id": str(p.security_id),
        "seller_id": str(p.seller.id),
        "buyer_id": str(p.buyer.id),
        "quantity": quantity,
        "price": {"amount": price, "currency": "USD"},
    }


async def brokered_deal(
    sessions: SessionFactory, p: Parties, *, quantity: int = 100, price: str = "12.50", **policy: Any
) -> DealWorkflowInput:
    """A deal row with the seller's shares reserved, as `POST /v1/deals` creates it (without starting it)."""
    deal_id = uuid.uuid4()
    reference = f"deal:{deal_id}"
    frozen = FrozenTransferPolicy(**policy)
    async with transaction(sessions) as session:
        await holdings.reserve_shares(
            session, owner_id=p.seller.id, security_id=p.security_id, quantity=quantity, reference=reference
        )
        deal = await deals.create_deal(
            session,
            deal_id=deal_id,
            security_id=p.security_id,
            company_id=p.company_id,
            seller_id=p.seller.id,
            buyer_id=p.buyer.id,
            quantity=quantity,
            price=Money(amount=Decimal(price), currency="USD"),
            source="brokered",
            policy=frozen,
            reservation_reference=reference,
        )
    return workflow_input(deal)


def workflow_input(deal: Deal) -> DealWorkflowInput:
    return DealWorkflowInput(
        deal_id=deal.id,
        security_id=deal.security_id,
        company_id=deal.company_id,
        seller_id=deal.seller_id,
        buyer_id=deal.buyer_id,
        quantity=deal.quantity,
        price=Money(amount=deal.price_amount, currency=deal.currency),
        policy=FrozenTransferPolicy.model_validate(deal.policy),
        reservation_reference=deal.reservation_reference,
        index_search_attributes=False,
    )
