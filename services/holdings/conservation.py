"""The shares reconciliation: the ledger explains every position, and trading creates no shares."""

from __future__ import annotations

import uuid
from collections import defaultdict

from sqlalchemy import ColumnElement, case, func, select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from models.holdings import (
    ConservationReport,
    Discrepancy,
    Holding,
    HoldingStatus,
    Movement,
    MovementKind,
    Reservation,
    SecurityShares,
)


def _sum_of(kind: MovementKind) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((col(Movement.kind) == kind.value, col(Movement.quantity)), else_=0)), 0)


async def check_position_caches(session: AsyncSession, security_id: uuid.UUID | None = None) -> list[Discrepancy]:
    """Positions whose cached quantity or reserved quantity differs from the sums of their movements."""
    sums = (
        select(
            col(Movement.holding_id).label("holding_id"),
            (
                _sum_of(MovementKind.DEPOSIT) + _sum_of(MovementKind.TRANSFER_IN) - _sum_of(MovementKind.TRANSFER_OUT)
            ).label("quantity"),
            (_sum_of(MovementKind.RESERVE) - _sum_of(MovementKind.RELEASE) - _sum_of(MovementKind.TRANSFER_OUT)).label(
                "reserved"
            ),
        )
        .group_by(col(Movement.holding_id))
        .subquery()
    )
    query = select(
        col(Holding.id),
        col(Holding.security_id),
        col(Holding.quantity),
        col(Holding.reserved_quantity),
        func.coalesce(sums.c.quantity, 0),
        func.coalesce(sums.c.reserved, 0),
    ).outerjoin(sums, sums.c.holding_id == col(Holding.id))
    if security_id is not None:
        query = query.where(col(Holding.security_id) == security_id)
    query = query.where(
        (col(Holding.quantity) != func.coalesce(sums.c.quantity, 0))
        | (col(Holding.reserved_quantity) != func.coalesce(sums.c.reserved, 0))
    )
    out: list[Discrepancy] = []
    for holding_id, sec_id, quantity, reserved, ledger_quantity, ledger_reserved in (
        await session.execute(query)
    ).all():
        if quantity != ledger_quantity:
            out.append(
                Discrepancy(
                    kind="position-quantity",
                    security_id=sec_id,
                    holding_id=holding_id,
                    detail="the position's quantity differs from the sum of its movements",
                    expected=int(ledger_quantity),
                    actual=quantity,
                )
            )
        if reserved != ledger_reserved:
            out.append(
                Discrepancy(
                    kind="position-reserved",
                    security_id=sec_id,
                    holding_id=holding_id,
                    detail="the position's reserved quantity differs from the sum of its movements",
                    expected=int(ledger_reserved),
                    actual=reserved,
                )
            )
    return out


async def shares_conservation_report(session: AsyncSession, security_id: uuid.UUID | None = None) -> ConservationReport:
    """Per security: verified shares equal verified deposits, transfers out equal transfers in,
    reservations equal reserved positions, and every position equals its movements."""
    verified = col(Holding.status) == HoldingStatus.VERIFIED.value
    per_security = select(
        col(Movement.security_id),
        func.coalesce(
            func.sum(
                case(((col(Movement.kind) == MovementKind.DEPOSIT.value) & verified, col(Movement.quantity)), else_=0)
            ),
            0,
        ),
        _sum_of(MovementKind.TRANSFER_OUT),
        _sum_of(MovementKind.TRANSFER_IN),
    ).join(Holding, col(Holding.id) == col(Movement.holding_id))
    positions = select(
        col(Holding.security_id),
        func.coalesce(func.sum(case((verified, col(Holding.quantity)), else_=0)), 0),
        func.coalesce(func.sum(col(Holding.reserved_quantity)), 0),
    )
    reservations = select(
        col(Reservation.security_id),
        func.coalesce(
            func.sum(
                col(Reservation.quantity) - col(Reservation.released_quantity) - col(Reservation.consumed_quantity)
            ),
            0,
        ),
    )
    if security_id is not None:
        per_security = per_security.where(col(Movement.security_id) == security_id)
        positions = positions.where(col(Holding.security_id) == security_id)
        reservations = reservations.where(col(Reservation.security_id) == security_id)
    ledger = {
        row[0]: row[1:] for row in (await session.execute(per_security.group_by(col(Movement.security_id)))).all()
    }
    held = {row[0]: row[1:] for row in (await session.execute(positions.group_by(col(Holding.security_id)))).all()}
    reserved_by_reservations: dict[uuid.UUID, int] = defaultdict(int)
    for sec_id, outstanding in (await session.execute(reservations.group_by(col(Reservation.security_id)))).all():
        reserved_by_reservations[sec_id] = int(outstanding)

    discrepancies = await check_position_caches(session, security_id)
    securities: list[SecurityShares] = []
    for sec_id in sorted(set(ledger) | set(held), key=str):
        deposited, out_qty, in_qty = (int(v) for v in ledger.get(sec_id, (0, 0, 0)))
        verified_total, reserved_total = (int(v) for v in held.get(sec_id, (0, 0)))
        securities.append(
            SecurityShares(
                security_id=sec_id,
                deposited_verified=deposited,
                verified_total=verified_total,
                transferred_out=out_qty,
                transferred_in=in_qty,
                reserved_total=reserved_total,
            )
        )
        if verified_total != deposited:
            discrepancies.append(
                Discrepancy(
                    kind="shares-created-or-destroyed",
                    security_id=sec_id,
                    detail="verified shares differ from verified deposits: trading changed the total",
                    expected=deposited,
                    actual=verified_total,
                )
            )
        if out_qty != in_qty:
            discrepancies.append(
                Discrepancy(
                    kind="transfer-imbalance",
                    security_id=sec_id,
                    detail="shares transferred out differ from shares transferred in",
                    expected=out_qty,
                    actual=in_qty,
                )
            )
        if reserved_total != reserved_by_reservations.get(sec_id, 0):
            discrepancies.append(
                Discrepancy(
                    kind="reservation-imbalance",
                    security_id=sec_id,
                    detail="reserved shares on positions differ from outstanding reservations",
                    expected=reserved_by_reservations.get(sec_id, 0),
                    actual=reserved_total,
                )
            )
    return ConservationReport(shares_conserved=not discrepancies, securities=securities, discrepancies=discrepancies)
