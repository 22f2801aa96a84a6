"""`/v1/companies` and `/v1/securities`: admins register issuers; any signed-in user reads them."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

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
from services import companies, holdings
from services.errors import Conflict
from services.identity.permissions import Permission
from services.pagination import DEFAULT_LIMIT, MAX_LIMIT

router = APIRouter(tags=["companies"])
Admin = Depends(require(Permission.COMPANIES_MANAGE))


@router.post("/v1/companies", status_code=status.HTTP_201_CREATED, dependencies=[Admin])
async def create_company(body: CompanyCreate, sessions: SessionsDep) -> CompanyDetail:
    async with transaction(sessions) as session:
        return await companies.create_company(session, body)


class FewerSharesThanVerified(Conflict):
    type = "fewer-shares-than-verified"
    title = "Fewer fully diluted shares than investors hold verified"


@router.patch("/v1/companies/{company_id}", dependencies=[Admin])
async def update_company(company_id: uuid.UUID, body: CompanyUpdate, sessions: SessionsDep) -> CompanyDetail:
    """A lower share count must still cover every verified holding (409 otherwise)."""
    async with transaction(sessions) as session:
        if body.fully_diluted_shares is not None:
            await companies.load_company(session, company_id, for_update=True)  # no verification meanwhile
            verified = await holdings.verified_shares_of_company(session, company_id)
            if body.fully_diluted_shares < verified:
                raise FewerSharesThanVerified(f"{verified:,} shares of this company are verified holdings.")
        return await companies.update_company(session, company_id, body)


@router.post("/v1/companies/{company_id}/funding-rounds", status_code=status.HTTP_201_CREATED, dependencies=[Admin])
async def add_funding_round(company_id: uuid.UUID, body: FundingRoundCreate, sessions: SessionsDep) -> FundingRoundRead:
    async with transaction(sessions) as session:
        return await companies.add_funding_round(session, company_id, body)


@router.post("/v1/companies/{company_id}/securities", status_code=status.HTTP_201_CREATED, dependencies=[Admin])
async def create_security(company_id: uuid.UUID, body: SecurityCreate, sessions: SessionsDep) -> SecurityRead:
    async with transaction(sessions) as session:
        return await companies.create_security(session, company_id, body)


@router.patch("/v1/securities/{security_id}", dependencies=[Admin])
async def update_security(security_id: uuid.UUID, body: SecurityUpdate, sessions: SessionsDep) -> SecurityRead:
    async with transaction(sessions) as session:
        return await companies.update_security(session, security_id, body)


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
