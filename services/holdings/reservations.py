"""Reserving shares for a sale in flight, and releasing them; idempotent per caller reference.

Reservations take FIFO from the owner's verified lots under `SELECT ... FOR UPDATE`
on all of those lots, so concurrent reservations serialize and can never oversell.
"""

from __future__ import annotations

import uuid
from collections import defaultdict

from sqlalchemy import func, select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from events import topics
from events.outbox import record_event
from models.base import utcnow
from models.holdings import Movement, MovementKind, Reservation, ReservationRead, ReservationStatus
from services.holdings.errors import InsufficientShares, ReservationConflict, ReservationNotFound
from services.holdings.ledger import SOURCE, apply_movement, lock_verified_positions, reservation_read

HOLDINGS_RESERVED = "holdings.reserved"
HOLDINGS_RELEASED = "holdings.released"


async def find_reservation(session: AsyncSession, reference: str, *, for_update: bool = False) -> Reservation | None:
    query = select(Reservation).where(Reservation.reference == reference)  # type: ignore[arg-type]
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(query)).scalars().first()


async def outstanding_by_holding(session: AsyncSession, reservation_id: uuid.UUID) -> dict[uuid.UUID, int]:
    """How many shares of each lot this reservation still holds (reserve - release - transfer_out)."""
    signed = {MovementKind.RESERVE.value: 1, MovementKind.RELEASE.value: -1, MovementKind.TRANSFER_OUT.value: -1}
    rows = (
        await session.execute(
            select(col(Movement.holding_id), col(Movement.kind), func.sum(col(Movement.quantity)))
            .where(col(Movement.reservation_id) == reservation_id)
            .group_by(col(Movement.holding_id), col(Movement.kind))
        )
    ).all()
    out: dict[uuid.UUID, int] = defaultdict(int)
    for holding_id, kind, total in rows:
        out[holding_id] += signed.get(kind, 0) * int(total)
    return {holding_id: qty for holding_id, qty in out.items() if qty > 0}


async def get_reservation(session: AsyncSession, reference: str) -> ReservationRead:
    reservation = await find_reservation(session, reference)
    if reservation is None:
        raise ReservationNotFound(f"No reservation with reference {reference!r}.")
    return reservation_read(reservation)


async def reserve_shares(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    security_id: uuid.UUID,
    quantity: int,
    reference: str,
) -> ReservationRead:
    """Reserve `quantity` verified unreserved shares, all or nothing (raises InsufficientShares).

    The same reference returns the existing reservation with no second effect; the same
    reference with another owner, security or quantity is a ReservationConflict.
    """
    if quantity <= 0:
        raise InsufficientShares(
            "A reservation needs a positive quantity.",
            errors=[{"pointer": "/quantity", "field": "quantity", "detail": "must be greater than 0"}],
        )
    positions = await lock_verified_positions(session, owner_id, security_id)
    existing = await find_reservation(session, reference)
    if existing is not None:
        if (existing.owner_id, existing.security_id, existing.quantity) != (owner_id, security_id, quantity):
            raise ReservationConflict(f"Reference {reference!r} already reserves other shares.")
        return reservation_read(existing)
    available = sum(p.quantity - p.reserved_quantity for p in positions)
    if available < quantity:
        raise InsufficientShares(
            f"Only {available} verified unreserved shares are available; {quantity} requested.",
            available=available,
            requested=quantity,
        )
    reservation = Reservation(reference=reference, owner_id=owner_id, security_id=security_id, quantity=quantity)
    session.add(reservation)
    await session.flush()
    remaining = quantity
    allocations: list[dict[str, object]] = []
    for position in positions:
        take = min(remaining, position.quantity - position.reserved_quantity)
        if take <= 0:
            continue
        apply_movement(
            session,
            position,
            MovementKind.RESERVE,
            take,
            idempotency_key=f"reserve:{reservation.id}:{position.id}",
            reservation_id=reservation.id,
            reference=reference,
        )
        allocations.append({"holding_id": str(position.id), "quantity": take})
        remaining -= take
        if remaining == 0:
            break
    await session.flush()
    await record_event(
        session,
        topic=topics.HOLDINGS,
        key=str(security_id),
        type=HOLDINGS_RESERVED,
        source=SOURCE,
        subject=str(reservation.id),
        data={
            "reservation_id": str(reservation.id),
            "reference": reference,
            "owner_id": str(owner_id),
            "security_id": str(security_id),
            "quantity": quantity,
            "allocations": allocations,
        },
    )
    return reservation_read(reservation)


async def release_reservation(
    session: AsyncSession,
    reference: str,
    quantity: int | None = None,
    *,
    idempotency_key: str | None = None,
) -> ReservationRead | None:
    """Give back all (or `quantity`) of the shares still reserved under `reference`.

    Safe to repeat: releasing all twice releases once; a partial release with the same
    `idempotency_key` applies once. An unknown reference releases nothing and returns None,
    so a compensation can run whether or not the reservation was ever made.
    """
    found = await find_reservation(session, reference)
    if found is None:
        return None
    positions = await lock_verified_positions(session, found.owner_id, found.security_id)
    reservation = await find_reservation(session, reference, for_update=True)
    assert reservation is not None
    key = idempotency_key or f"n{reservation.released_quantity}-{reservation.consumed_quantity}"
    key_prefix = f"release:{reservation.id}:{key}:"
    already = (
        await session.execute(
            select(func.count()).select_from(Movement).where(col(Movement.idempotency_key).startswith(key_prefix))
        )
    ).scalar_one()
    outstanding = reservation.quantity - reservation.released_quantity - reservation.consumed_quantity
    if already or outstanding == 0:
        return reservation_read(reservation)
    if quantity is not None and quantity <= 0:
        raise ReservationConflict("A release needs a positive quantity.")
    to_release = outstanding if quantity is None else min(quantity, outstanding)
    by_holding = await outstanding_by_holding(session, reservation.id)
    # Give back the newest lots first so the oldest stay reserved for FIFO consumption.
    remaining = to_release
    for position in reversed(positions):
        take = min(remaining, by_holding.get(position.id, 0))
        if take <= 0:
            continue
        apply_movement(
            session,
            position,
            MovementKind.RELEASE,
            take,
            idempotency_key=f"{key_prefix}{position.id}",
            reservation_id=reservation.id,
            reference=reference,
        )
        remaining -= take
        if remaining == 0:
            break
    reservation.released_quantity += to_release
    if reservation.released_quantity + reservation.consumed_quantity == reservation.quantity:
        reservation.status = (
            ReservationStatus.CONSUMED.value if reservation.consumed_quantity else ReservationStatus.RELEASED.value
        )
    reservation.updated_at = utcnow()
    session.add(reservation)
    await session.flush()
    await record_event(
        session,
        topic=topics.HOLDINGS,
        key=str(reservation.security_id),
        type=HOLDINGS_RELEASED,
        source=SOURCE,
        subject=str(reservation.id),
        data={
            "reservation_id": str(reservation.id),
            "reference": reference,
            "owner_id": str(reservation.owner_id),
            "security_id": str(reservation.security_id),
            "quantity": to_release,
            "outstanding_quantity": reservation.quantity
            - reservation.released_quantity
            - reservation.consumed_quantity,
        },
    )
    return reservation_read(reservation)


async def move_reservation(
    session: AsyncSession, reference: str, new_reference: str, *, add: int, idempotency_key: str
) -> ReservationRead:
    """Re-reserve what `reference` still holds, plus `add` more shares, under `new_reference` (a sell order grows).

    What the old reservation still holds is read under the owner's position locks, which a settlement
    consuming it takes too: shares transferred meanwhile are never reserved again.
    """
    found = await find_reservation(session, reference)
    if found is None:
        raise ReservationNotFound(f"No reservation with reference {reference!r}.")
    await lock_verified_positions(session, found.owner_id, found.security_id)
    current = await find_reservation(session, reference, for_update=True)
    assert current is not None
    held = current.quantity - current.released_quantity - current.consumed_quantity
    await release_reservation(session, reference, idempotency_key=idempotency_key)
    return await reserve_shares(
        session,
        owner_id=current.owner_id,
        security_id=current.security_id,
        quantity=held + add,
        reference=new_reference,
    )
