"""The movement ledger: the one place that changes a position's quantities, and its row locks."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy import select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import Money, utcnow
from models.holdings import (
    Holding,
    HoldingRead,
    HoldingStatus,
    LotRead,
    Movement,
    MovementKind,
    Provenance,
    Reservation,
    ReservationRead,
    ReservationStatus,
)

SOURCE = "/pap/holdings"

_QUANTITY_SIGN = {
    MovementKind.DEPOSIT: 1,
    MovementKind.TRANSFER_IN: 1,
    MovementKind.TRANSFER_OUT: -1,
    MovementKind.RESERVE: 0,
    MovementKind.RELEASE: 0,
}
_RESERVED_SIGN = {
    MovementKind.DEPOSIT: 0,
    MovementKind.TRANSFER_IN: 0,
    MovementKind.TRANSFER_OUT: -1,
    MovementKind.RESERVE: 1,
    MovementKind.RELEASE: -1,
}


def _money(amount: Decimal | None, currency: str | None) -> Money | None:
    """Money as stored (4 decimal places), so a create and a later read render the same string."""
    if amount is None or currency is None:
        return None
    return Money(amount=amount.quantize(Decimal("0.0001")), currency=currency)


def holding_read(holding: Holding) -> HoldingRead:
    cost_basis = _money(holding.cost_basis_amount, holding.cost_basis_currency)
    return HoldingRead(
        id=holding.id,
        owner_id=holding.owner_id,
        security_id=holding.security_id,
        company_id=holding.company_id,
        quantity=holding.quantity,
        reserved_quantity=holding.reserved_quantity,
        available_quantity=holding.quantity - holding.reserved_quantity
        if holding.status == HoldingStatus.VERIFIED
        else 0,
        status=HoldingStatus(holding.status),
        cost_basis=cost_basis,
        acquisition_date=holding.acquisition_date,
        provenance=Provenance(holding.provenance),
        source_transfer_id=holding.source_transfer_id,
        lots=[LotRead(quantity=holding.quantity, cost_basis=cost_basis, acquisition_date=holding.acquisition_date)],
        decided_at=holding.decided_at,
        decision_reason=holding.decision_reason,
        created_at=holding.created_at,
        updated_at=holding.updated_at,
    )


def reservation_read(reservation: Reservation) -> ReservationRead:
    return ReservationRead(
        id=reservation.id,
        reference=reservation.reference,
        owner_id=reservation.owner_id,
        security_id=reservation.security_id,
        quantity=reservation.quantity,
        released_quantity=reservation.released_quantity,
        consumed_quantity=reservation.consumed_quantity,
        outstanding_quantity=reservation.quantity - reservation.released_quantity - reservation.consumed_quantity,
        status=ReservationStatus(reservation.status),
    )


async def lock_verified_positions(session: AsyncSession, owner_id: uuid.UUID, security_id: uuid.UUID) -> list[Holding]:
    """All verified lots of an owner in a security, FIFO, locked `FOR UPDATE`.

    Every use case that changes reserved or held quantities of a seller takes these
    locks first and in this order, so concurrent calls serialize and never deadlock.
    """
    query = (
        select(Holding)
        .where(
            Holding.owner_id == owner_id,  # type: ignore[arg-type]
            Holding.security_id == security_id,  # type: ignore[arg-type]
            Holding.status == HoldingStatus.VERIFIED.value,  # type: ignore[arg-type]
        )
        .order_by(
            Holding.acquisition_date.asc().nulls_last(),  # type: ignore[union-attr]
            Holding.created_at,  # type: ignore[arg-type]
            Holding.id,  # type: ignore[arg-type]
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(query)).scalars())


def apply_movement(
    session: AsyncSession,
    holding: Holding,
    kind: MovementKind,
    quantity: int,
    *,
    idempotency_key: str,
    reservation_id: uuid.UUID | None = None,
    transfer_id: uuid.UUID | None = None,
    reference: str | None = None,
) -> Movement:
    """Write one ledger line and move the position's cached quantities by the same amount."""
    movement = Movement(
        holding_id=holding.id,
        owner_id=holding.owner_id,
        security_id=holding.security_id,
        kind=kind.value,
        quantity=quantity,
        reservation_id=reservation_id,
        transfer_id=transfer_id,
        reference=reference,
        idempotency_key=idempotency_key,
    )
    holding.quantity += _QUANTITY_SIGN[kind] * quantity
    holding.reserved_quantity += _RESERVED_SIGN[kind] * quantity
    holding.updated_at = utcnow()
    session.add(movement)
    session.add(holding)
    return movement
