"""`/v1/companies` and `/v1/securities`: admins register issuers; any signed-in user reads them."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession

from api.auth import CurrentUser, require
from api.deps import SessionDep, SessionsDep
from models.companies import (
    CompanyCreate,
    CompanyDetail,
    CompanyPage,
    CompanyUpdate,
    FundingRoundCreate,
    FundingRoundRead,
    SecurityCreate,
    SecurityRead,
    SecurityUpdate,
)
from pap.db import transaction
from services import admin, companies, holdings
from services.errors import Conflict
from services.identity.permissions import Permission
from services.identity.tokens import Principal
from services.pagination import DEFAULT_LIMIT, MAX_LIMIT

router = APIRouter(tags=["companies"])
Admin = Annotated[Principal, Depends(require(Permission.COMPANIES_MANAGE))]
"""Every change an admin makes here is audited: transfer policy and round prices move money and prices."""


async def _audit(
    session: AsyncSession, who: Principal, action: str, entity: tuple[str, uuid.UUID], body: BaseModel
) -> None:
    data = body.model_dump(mode="json", exclude_unset=True)
    await admin.record_audit(
        session, actor_id=who.user_id, action=action, entity_type=entity[0], entity_id=entity[1], data=data
    )


@router.post("/v1/companies", status_code=status.HTTP_201_CREATED)
async def create_company(body: CompanyCreate, sessions: SessionsDep, who: Admin) -> CompanyDetail:
    async with transaction(sessions) as session:
        created = await companies.create_company(session, body)
        await _audit(session, who, "companies.company.created", ("company", created.id), body)
        return created


class FewerSharesThanVerified(Conflict):
    type = "fewer-shares-than-verified"
    title = "Fewer fully diluted shares than investors hold verified"


@router.patch("/v1/companies/{company_id}")
async def update_company(
    company_id: uuid.UUID, body: CompanyUpdate, sessions: SessionsDep, who: Admin
) -> CompanyDetail:
    """A lower share count must still cover every verified holding (409 otherwise)."""
    async with transaction(sessions) as session:
        if body.fully_diluted_shares is not None:
            await companies.load_company(session, company_id, for_update=True)  # no verification meanwhile
            verified = await holdings.verified_shares_of_company(session, company_id)
            if body.fully_diluted_shares < verified:
                raise FewerSharesThanVerified(f"{verified:,} shares of this company are verified holdings.")
        updated = await companies.update_company(session, company_id, body)
        await _audit(session, who, "companies.company.updated", ("company", company_id), body)
        return updated


@router.post("/v1/companies/{company_id}/funding-rounds", status_code=status.HTTP_201_CREATED)
async def add_funding_round(
    company_id: uuid.UUID, body: FundingRoundCreate, sessions: SessionsDep, who: Admin
) -> FundingRoundRead:
    async with transaction(sessions) as session:
        added = await companies.add_funding_round(session, company_id, body)
        await _audit(session, who, "companies.funding_round.added", ("company", company_id), body)
        return added


@router.post("/v1/companies/{company_id}/securities", status_code=status.HTTP_201_CREATED)
async def create_security(
    company_id: uuid.UUID, body: SecurityCreate, sessions: SessionsDep, who: Admin
) -> SecurityRead:
    async with transaction(sessions) as session:
        created = await companies.create_security(session, company_id, body)
        await _audit(session, who, "companies.security.created", ("security", created.id), body)
        return created


@router.patch("/v1/securities/{security_id}")
async def update_security(
    security_id: uuid.UUID, body: SecurityUpdate, sessions: SessionsDep, who: Admin
) -> SecurityRead:
    async with transaction(sessions) as session:
        updated = await companies.update_security(session, security_id, body)
        await _audit(session, who, "companies.security.updated", ("security", security_id), body)
        return updated


@router.get("/v1/companies")
async def list_companies(
    _: CurrentUser,
    session: SessionDep,
    sector: Annotated[str | None, Query(max_length=100)] = None,
    q: Annotated[str | None, Query(max_length=200, description="Search in name and legal name")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> CompanyPage:
    return await companies.list_companies(session, sector=sector, q=q, limit=limit, cursor=cursor)


@router.get("/v1/companies/{company_id}")
async def get_company(company_id: uuid.UUID, _: CurrentUser, session: SessionDep) -> CompanyDetail:
    return await companies.get_company(session, company_id)


@router.get("/v1/securities/{security_id}")
async def get_security(security_id: uuid.UUID, _: CurrentUser, session: SessionDep) -> SecurityRead:
    return await companies.get_security(session, security_id)
