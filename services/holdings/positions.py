"""Declaring, verifying and reading positions; who may see or decide on which position."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from events import topics
from events.outbox import record_event
from models.base import utcnow
from models.holdings import (
    Holding,
    HoldingCreate,
    HoldingPage,
    HoldingRead,
    HoldingStatus,
    Movement,
    MovementKind,
    MovementPage,
    MovementRead,
    Provenance,
)
from services.companies import SecurityNotFound, get_security_and_company, load_company
from services.holdings.errors import (
    HoldingAlreadyDecided,
    HoldingNotFound,
    MoreThanFullyDiluted,
    NotHoldingVerifier,
    UnknownSecurity,
    VerifiedBeyondFullyDiluted,
)
from services.holdings.ledger import SOURCE, apply_movement, holding_read
from services.identity.permissions import Role
from services.identity.tokens import Principal
from services.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor

HOLDING_SUBMITTED = "holdings.submitted"
HOLDING_VERIFIED = "holdings.verified"
HOLDING_REJECTED = "holdings.rejected"


def _is_compliance(principal: Principal) -> bool:
    return Role.COMPLIANCE in principal.roles and principal.mfa


def _is_issuer_of(principal: Principal, company_id: uuid.UUID) -> bool:
    return Role.ISSUER in principal.roles and principal.company_id == company_id


def can_view(principal: Principal, holding: Holding) -> bool:
    return (
        holding.owner_id == principal.user_id
        or _is_compliance(principal)
        or _is_issuer_of(principal, holding.company_id)
    )


async def _emit(session: AsyncSession, type_: str, holding: Holding, data: dict[str, Any] | None = None) -> None:
    await record_event(
        session,
        topic=topics.HOLDINGS,
        key=str(holding.security_id),
        type=type_,
        source=SOURCE,
        subject=str(holding.id),
        data={
            "holding_id": str(holding.id),
            "owner_id": str(holding.owner_id),
            "security_id": str(holding.security_id),
            "company_id": str(holding.company_id),
            "quantity": holding.quantity,
            "status": holding.status,
            **(data or {}),
        },
    )


async def submit_holding(session: AsyncSession, owner_id: uuid.UUID, body: HoldingCreate) -> HoldingRead:
    """An investor declares a lot; it counts for trading only once compliance or the issuer verifies it."""
    try:
        security, company = await get_security_and_company(session, body.security_id)
    except SecurityNotFound as error:
        raise UnknownSecurity(
            f"Security {body.security_id} does not exist.",
            errors=[{"pointer": "/body/security_id", "field": "security_id", "detail": "unknown security"}],
        ) from error
    if body.quantity > company.fully_diluted_shares:
        raise MoreThanFullyDiluted(
            f"{company.name} has {company.fully_diluted_shares:,} shares fully diluted.",
            errors=[{"pointer": "/body/quantity", "field": "quantity", "detail": "more than the company's shares"}],
        )
    holding = Holding(
        owner_id=owner_id,
        security_id=security.id,
        company_id=security.company_id,
        status=HoldingStatus.PENDING_VERIFICATION.value,
        cost_basis_amount=body.cost_basis.amount if body.cost_basis else None,
        cost_basis_currency=body.cost_basis.currency if body.cost_basis else None,
        acquisition_date=body.acquisition_date,
        provenance=Provenance.DEPOSIT.value,
    )
    session.add(holding)
    await session.flush()
    apply_movement(session, holding, MovementKind.DEPOSIT, body.quantity, idempotency_key=f"deposit:{holding.id}")
    await session.flush()
    await _emit(session, HOLDING_SUBMITTED, holding)
    return holding_read(holding)


async def _decide(
    session: AsyncSession, principal: Principal, holding_id: uuid.UUID, status: HoldingStatus, reason: str | None
) -> HoldingRead:
    holding = await session.get(Holding, holding_id, with_for_update=True)
    if holding is None:
        raise HoldingNotFound(f"Holding {holding_id} does not exist.")
    if not (_is_compliance(principal) or _is_issuer_of(principal, holding.company_id)):
        raise NotHoldingVerifier("Only compliance or the issuer of this company may decide on this holding.")
    if holding.owner_id == principal.user_id:
        raise NotHoldingVerifier("You cannot decide on your own holding.")
    if holding.status == status.value:
        return holding_read(holding)
    if holding.status != HoldingStatus.PENDING_VERIFICATION.value:
        raise HoldingAlreadyDecided(f"Holding {holding_id} is already {holding.status}.")
    if status == HoldingStatus.VERIFIED:
        await _check_within_fully_diluted(session, holding)
    holding.status = status.value
    holding.decided_by = principal.user_id
    holding.decided_at = utcnow()
    holding.decision_reason = reason
    holding.updated_at = holding.decided_at
    session.add(holding)
    await session.flush()
    event = HOLDING_VERIFIED if status == HoldingStatus.VERIFIED else HOLDING_REJECTED
    await _emit(session, event, holding, {"decided_by": str(principal.user_id), "reason": reason})
    return holding_read(holding)


async def verified_shares_of_company(session: AsyncSession, company_id: uuid.UUID) -> int:
    """Every verified share of the company's securities, whoever holds them."""
    verified = await session.scalar(
        select(func.coalesce(func.sum(col(Holding.quantity)), 0)).where(
            col(Holding.company_id) == company_id, col(Holding.status) == HoldingStatus.VERIFIED.value
        )
    )
    return int(verified or 0)


async def _check_within_fully_diluted(session: AsyncSession, holding: Holding) -> None:
    """Verified shares never add up to more than the company has (its row is locked, so two verifications
    of one company are decided one after the other)."""
    company = await load_company(session, holding.company_id, for_update=True)
    verified = await verified_shares_of_company(session, holding.company_id)
    if verified + holding.quantity > company.fully_diluted_shares:
        raise VerifiedBeyondFullyDiluted(
            f"{company.name} has {company.fully_diluted_shares:,} shares fully diluted and {verified:,} "
            "are verified already: this holding does not fit."
        )


async def verify_holding(
    session: AsyncSession, principal: Principal, holding_id: uuid.UUID, reason: str | None = None
) -> HoldingRead:
    """Compliance (any company) or the issuer of the holding's company confirms ownership; idempotent."""
    return await _decide(session, principal, holding_id, HoldingStatus.VERIFIED, reason)


async def reject_holding(
    session: AsyncSession, principal: Principal, holding_id: uuid.UUID, reason: str | None = None
) -> HoldingRead:
    return await _decide(session, principal, holding_id, HoldingStatus.REJECTED, reason)


async def get_holding(session: AsyncSession, holding_id: uuid.UUID) -> HoldingRead:
    """A position by id, for other contexts (no authorization: the caller has decided)."""
    holding = await session.get(Holding, holding_id)
    if holding is None:
        raise HoldingNotFound(f"Holding {holding_id} does not exist.")
    return holding_read(holding)


async def get_holding_for(session: AsyncSession, principal: Principal, holding_id: uuid.UUID) -> HoldingRead:
    """A position as seen by its owner, compliance or the company's issuer; 404 for anyone else."""
    holding = await session.get(Holding, holding_id)
    if holding is None or not can_view(principal, holding):
        raise HoldingNotFound(f"Holding {holding_id} does not exist.")
    return holding_read(holding)


async def list_holdings(
    session: AsyncSession,
    owner_id: uuid.UUID,
    *,
    security_id: uuid.UUID | None = None,
    status: HoldingStatus | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> HoldingPage:
    """The owner's positions, oldest first (empty lots that were fully sold are included)."""
    limit = max(1, min(limit, MAX_LIMIT))
    query = select(Holding).where(Holding.owner_id == owner_id)  # type: ignore[arg-type]
    if security_id is not None:
        query = query.where(Holding.security_id == security_id)  # type: ignore[arg-type]
    if status is not None:
        query = query.where(Holding.status == status.value)  # type: ignore[arg-type]
    if cursor:
        after_at, after_id = decode_cursor(cursor)
        query = query.where(
            or_(
                Holding.created_at > after_at,  # type: ignore[arg-type]
                and_(Holding.created_at == after_at, Holding.id > after_id),  # type: ignore[arg-type]
            )
        )
    query = query.order_by(Holding.created_at, Holding.id).limit(limit + 1)  # type: ignore[arg-type]
    rows = list((await session.execute(query)).scalars())
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return HoldingPage(items=[holding_read(h) for h in page], next_cursor=next_cursor)


async def available_shares(session: AsyncSession, owner_id: uuid.UUID, security_id: uuid.UUID) -> int:
    """Verified unreserved shares of an owner in a security (a snapshot; reserve_shares is the real check)."""
    rows = (
        await session.execute(
            select(col(Holding.quantity), col(Holding.reserved_quantity)).where(
                col(Holding.owner_id) == owner_id,
                col(Holding.security_id) == security_id,
                col(Holding.status) == HoldingStatus.VERIFIED.value,
            )
        )
    ).all()
    return sum(quantity - reserved for quantity, reserved in rows)


async def list_movements(
    session: AsyncSession,
    principal: Principal,
    holding_id: uuid.UUID,
    *,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> MovementPage:
    """The ledger lines of one position, oldest first, for whoever may see the position."""
    await get_holding_for(session, principal, holding_id)
    limit = max(1, min(limit, MAX_LIMIT))
    query = select(Movement).where(Movement.holding_id == holding_id)  # type: ignore[arg-type]
    if cursor:
        after_at, after_id = decode_cursor(cursor)
        query = query.where(
            or_(
                Movement.created_at > after_at,  # type: ignore[arg-type]
                and_(Movement.created_at == after_at, Movement.id > after_id),  # type: ignore[arg-type]
            )
        )
    query = query.order_by(Movement.created_at, Movement.id).limit(limit + 1)  # type: ignore[arg-type]
    rows = list((await session.execute(query)).scalars())
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return MovementPage(
        items=[
            MovementRead(
                id=m.id,
                holding_id=m.holding_id,
                owner_id=m.owner_id,
                security_id=m.security_id,
                kind=MovementKind(m.kind),
                quantity=m.quantity,
                reservation_id=m.reservation_id,
                transfer_id=m.transfer_id,
                reference=m.reference,
                created_at=m.created_at,
            )
            for m in page
        ],
        next_cursor=next_cursor,
    )
