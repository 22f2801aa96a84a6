"""Reading companies and securities; the read functions other contexts call."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy import and_, func, or_, select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import Money
from models.companies import (
    Company,
    CompanyDetail,
    CompanyPage,
    CompanyRead,
    FundingRound,
    FundingRoundRead,
    Security,
    SecurityKind,
    SecurityRead,
    TransferPolicy,
)
from services.companies.errors import CompanyNotFound, SecurityNotFound
from services.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor

_CENTI_CENTS = Decimal("0.0001")


def _money(amount: Decimal | None, currency: str | None) -> Money | None:
    """Money as stored (4 decimal places), so a create and a later read render the same string."""
    if amount is None or currency is None:
        return None
    return Money(amount=amount.quantize(_CENTI_CENTS), currency=currency)


def _required_money(amount: Decimal, currency: str) -> Money:
    money = _money(amount, currency)
    assert money is not None
    return money


def company_read(company: Company) -> CompanyRead:
    return CompanyRead(
        id=company.id,
        name=company.name,
        legal_name=company.legal_name,
        jurisdiction=company.jurisdiction,
        sector=company.sector,
        website=company.website,
        description=company.description,
        fully_diluted_shares=company.fully_diluted_shares,
        transfer_policy=TransferPolicy.model_validate(company.transfer_policy),
        cap_table_references=list(company.cap_table_references),
        created_at=company.created_at,
        updated_at=company.updated_at,
    )


def security_read(security: Security) -> SecurityRead:
    return SecurityRead(
        id=security.id,
        company_id=security.company_id,
        class_name=security.class_name,
        kind=SecurityKind(security.kind),
        last_round_price=_money(security.last_round_price_amount, security.last_round_price_currency),
        tradable=security.tradable,
        created_at=security.created_at,
    )


def funding_round_read(row: FundingRound) -> FundingRoundRead:
    return FundingRoundRead(
        id=row.id,
        company_id=row.company_id,
        round_name=row.round_name,
        round_date=row.round_date,
        price_per_share=_required_money(row.price_per_share_amount, row.price_per_share_currency),
        amount_raised=_required_money(row.amount_raised_amount, row.amount_raised_currency),
        post_money_valuation=_required_money(row.post_money_valuation_amount, row.post_money_valuation_currency),
        created_at=row.created_at,
    )


async def load_company(session: AsyncSession, company_id: uuid.UUID, *, for_update: bool = False) -> Company:
    company = await session.get(Company, company_id, with_for_update=for_update)
    if company is None:
        raise CompanyNotFound(f"Company {company_id} does not exist.")
    return company


async def load_security(session: AsyncSession, security_id: uuid.UUID, *, for_update: bool = False) -> Security:
    security = await session.get(Security, security_id, with_for_update=for_update)
    if security is None:
        raise SecurityNotFound(f"Security {security_id} does not exist.")
    return security


async def get_company(session: AsyncSession, company_id: uuid.UUID) -> CompanyDetail:
    """The company with its securities, funding rounds and transfer policy (raises CompanyNotFound)."""
    company = await load_company(session, company_id)
    securities = (
        await session.execute(
            select(Security).where(Security.company_id == company_id).order_by(Security.created_at, Security.id)  # type: ignore[arg-type]
        )
    ).scalars()
    rounds = (
        await session.execute(
            select(FundingRound)
            .where(FundingRound.company_id == company_id)  # type: ignore[arg-type]
            .order_by(FundingRound.round_date, FundingRound.created_at)  # type: ignore[arg-type]
        )
    ).scalars()
    return CompanyDetail(
        **company_read(company).model_dump(),
        securities=[security_read(s) for s in securities],
        funding_rounds=[funding_round_read(r) for r in rounds],
    )


async def list_companies(
    session: AsyncSession,
    *,
    sector: str | None = None,
    q: str | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> CompanyPage:
    """Companies oldest first, filtered by sector (exact, case-insensitive) and a name search."""
    limit = max(1, min(limit, MAX_LIMIT))
    query = select(Company)
    if sector:
        query = query.where(func.lower(Company.sector) == sector.lower())
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            or_(Company.name.ilike(pattern), Company.legal_name.ilike(pattern))  # type: ignore[attr-defined]
        )
    if cursor:
        after_at, after_id = decode_cursor(cursor)
        query = query.where(
            or_(
                Company.created_at > after_at,  # type: ignore[arg-type]
                and_(Company.created_at == after_at, Company.id > after_id),  # type: ignore[arg-type]
            )
        )
    query = query.order_by(Company.created_at, Company.id).limit(limit + 1)  # type: ignore[arg-type]
    rows = list((await session.execute(query)).scalars())
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return CompanyPage(items=[company_read(c) for c in page], next_cursor=next_cursor)


async def get_security(session: AsyncSession, security_id: uuid.UUID) -> SecurityRead:
    """The security (share class) and its company id (raises SecurityNotFound, a NotFound)."""
    return security_read(await load_security(session, security_id))


async def get_security_and_company(session: AsyncSession, security_id: uuid.UUID) -> tuple[SecurityRead, Company]:
    """The security and its issuer in one query (raises SecurityNotFound): the order path's transfer checks."""
    row = (
        await session.execute(
            select(Security, Company)
            .join(Company, col(Company.id) == col(Security.company_id))
            .where(col(Security.id) == security_id)
        )
    ).first()
    if row is None:
        raise SecurityNotFound(f"Security {security_id} does not exist.")
    return security_read(row[0]), row[1]


async def transfer_policy_for_security(session: AsyncSession, security_id: uuid.UUID) -> TransferPolicy:
    """A snapshot of the issuing company's transfer policy, to freeze into a deal."""
    security = await load_security(session, security_id)
    company = await load_company(session, security.company_id)
    return TransferPolicy.model_validate(company.transfer_policy)


async def tradable_securities(session: AsyncSession) -> list[tuple[uuid.UUID, str, str]]:
    """Every tradable security as (id, company name, class name), by company name: one query, for pickers."""
    rows = await session.execute(
        select(col(Security.id), col(Company.name), col(Security.class_name))
        .join(Company, col(Company.id) == col(Security.company_id))
        .where(col(Security.tradable).is_(True))
        .order_by(col(Company.name), col(Security.class_name))
    )
    return [(row[0], row[1], row[2]) for row in rows]
