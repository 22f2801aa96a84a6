"""Admin use cases: registering companies, their securities, funding rounds and transfer policy."""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from events import topics
from events.outbox import record_event
from models.base import utcnow
from models.companies import (
    Company,
    CompanyCreate,
    CompanyDetail,
    CompanyUpdate,
    FundingRound,
    FundingRoundCreate,
    FundingRoundRead,
    Security,
    SecurityCreate,
    SecurityRead,
    SecurityUpdate,
    TransferPolicy,
)
from services.companies.queries import (
    company_read,
    funding_round_read,
    get_company,
    load_company,
    load_security,
    security_read,
)

SOURCE = "/pap/companies"
COMPANY_CREATED = "companies.company.created"
COMPANY_UPDATED = "companies.company.updated"
SECURITY_CREATED = "companies.security.created"
SECURITY_UPDATED = "companies.security.updated"
FUNDING_ROUND_ADDED = "companies.funding_round.added"


async def _emit(session: AsyncSession, type_: str, company_id: uuid.UUID, data: dict[str, Any]) -> None:
    await record_event(
        session,
        topic=topics.COMPANIES,
        key=str(company_id),
        type=type_,
        source=SOURCE,
        subject=str(company_id),
        data=data,
    )


async def create_company(session: AsyncSession, body: CompanyCreate) -> CompanyDetail:
    company = Company(
        name=body.name,
        legal_name=body.legal_name,
        jurisdiction=body.jurisdiction,
        sector=body.sector,
        website=str(body.website) if body.website else None,
        description=body.description,
        fully_diluted_shares=body.fully_diluted_shares,
        transfer_policy=body.transfer_policy.model_dump(mode="json"),
        cap_table_references=body.cap_table_references,
    )
    session.add(company)
    await session.flush()
    await _emit(session, COMPANY_CREATED, company.id, company_read(company).model_dump(mode="json"))
    return await get_company(session, company.id)


async def update_company(session: AsyncSession, company_id: uuid.UUID, body: CompanyUpdate) -> CompanyDetail:
    """Applies only the fields sent; a partial transfer policy is merged into the current one."""
    company = await load_company(session, company_id, for_update=True)
    changes = body.model_dump(exclude_unset=True, exclude={"transfer_policy"})
    if "website" in changes:
        changes["website"] = str(body.website) if body.website else None
    for field, value in changes.items():
        setattr(company, field, value)
    if body.transfer_policy is not None:
        merged = {**company.transfer_policy, **body.transfer_policy.model_dump(mode="json", exclude_unset=True)}
        company.transfer_policy = TransferPolicy.model_validate(merged).model_dump(mode="json")
    company.updated_at = utcnow()
    session.add(company)
    await session.flush()
    changed = sorted(body.model_dump(exclude_unset=True))
    await _emit(
        session,
        COMPANY_UPDATED,
        company.id,
        {"changed": changed, "company": company_read(company).model_dump(mode="json")},
    )
    return await get_company(session, company.id)


async def add_funding_round(session: AsyncSession, company_id: uuid.UUID, body: FundingRoundCreate) -> FundingRoundRead:
    await load_company(session, company_id)
    row = FundingRound(
        company_id=company_id,
        round_name=body.round_name,
        round_date=body.round_date,
        price_per_share_amount=body.price_per_share.amount,
        price_per_share_currency=body.price_per_share.currency,
        amount_raised_amount=body.amount_raised.amount,
        amount_raised_currency=body.amount_raised.currency,
        post_money_valuation_amount=body.post_money_valuation.amount,
        post_money_valuation_currency=body.post_money_valuation.currency,
    )
    session.add(row)
    await session.flush()
    read = funding_round_read(row)
    await _emit(session, FUNDING_ROUND_ADDED, company_id, read.model_dump(mode="json"))
    return read


async def create_security(session: AsyncSession, company_id: uuid.UUID, body: SecurityCreate) -> SecurityRead:
    await load_company(session, company_id)
    security = Security(
        company_id=company_id,
        class_name=body.class_name,
        kind=body.kind.value,
        last_round_price_amount=body.last_round_price.amount if body.last_round_price else None,
        last_round_price_currency=body.last_round_price.currency if body.last_round_price else None,
        tradable=body.tradable,
    )
    session.add(security)
    await session.flush()
    read = security_read(security)
    await _emit(session, SECURITY_CREATED, company_id, read.model_dump(mode="json"))
    return read


async def update_security(session: AsyncSession, security_id: uuid.UUID, body: SecurityUpdate) -> SecurityRead:
    """Renames, reprices or marks a security (not) tradable; only the fields sent change."""
    security = await load_security(session, security_id, for_update=True)
    changes = body.model_dump(exclude_unset=True)
    if "class_name" in changes and body.class_name is not None:
        security.class_name = body.class_name
    if "tradable" in changes and body.tradable is not None:
        security.tradable = body.tradable
    if "last_round_price" in changes:
        price = body.last_round_price
        security.last_round_price_amount = price.amount if price else None
        security.last_round_price_currency = price.currency if price else None
    security.updated_at = utcnow()
    session.add(security)
    await session.flush()
    read = security_read(security)
    await _emit(
        session, SECURITY_UPDATED, security.company_id, {"changed": sorted(changes), **read.model_dump(mode="json")}
    )
    return read
