"""Settling a sale: reserved shares move from seller to buyer in one transaction, once per deal.

Lineage follows the Open Cap Format's StockTransfer: each leg names the source lot,
the quantity taken and the seller's balance; the buyer gets one new verified position
whose provenance is the transfer.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlmodel.ext.asyncio.session import AsyncSession

from events import topics
from events.outbox import record_event
from models.base import Money, utcnow
from models.holdings import (
    Holding,
    HoldingStatus,
    MovementKind,
    Provenance,
    ReservationStatus,
    Transfer,
    TransferLeg,
    TransferLegRead,
    TransferRecord,
)
from services.holdings.errors import InsufficientShares, ReservationConflict, ReservationNotFound
from services.holdings.ledger import SOURCE, apply_movement, lock_verified_positions
from services.holdings.reservations import find_reservation, outstanding_by_holding

HOLDINGS_TRANSFERRED = "holdings.transferred"


async def _record(session: AsyncSession, transfer: Transfer) -> TransferRecord:
    legs = (
        await session.execute(
            select(TransferLeg).where(TransferLeg.transfer_id == transfer.id)  # type: ignore[arg-type]
        )
    ).scalars()
    return TransferRecord(
        id=transfer.id,
        deal_id=transfer.deal_id,
        reservation_id=transfer.reservation_id,
        security_id=transfer.security_id,
        seller_id=transfer.seller_id,
        buyer_id=transfer.buyer_id,
        quantity=transfer.quantity,
        price=Money(amount=transfer.price_amount.quantize(Decimal("0.0001")), currency=transfer.price_currency),
        resulting_holding_id=transfer.resulting_holding_id,
        legs=[
            TransferLegRead(
                source_holding_id=leg.source_holding_id,
                quantity=leg.quantity,
                balance_holding_id=leg.balance_holding_id,
                balance_quantity=leg.balance_quantity,
            )
            for leg in legs
        ],
        created_at=transfer.created_at,
    )


async def _existing(session: AsyncSession, deal_id: uuid.UUID) -> Transfer | None:
    query = select(Transfer).where(Transfer.deal_id == deal_id)  # type: ignore[arg-type]
    return (await session.execute(query)).scalars().first()


async def get_transfer(session: AsyncSession, deal_id: uuid.UUID) -> TransferRecord | None:
    transfer = await _existing(session, deal_id)
    return await _record(session, transfer) if transfer is not None else None


async def consume_reservation_and_transfer(
    session: AsyncSession,
    *,
    reference: str,
    buyer_id: uuid.UUID,
    quantity: int,
    price: Money,
    deal_id: uuid.UUID,
    on_date: date | None = None,
) -> TransferRecord:
    """Move `quantity` reserved shares to the buyer; a repeat for the same deal returns the first record.

    Shares left reserved after a partial consumption stay reserved; the caller releases them.
    """
    done = await _existing(session, deal_id)
    if done is not None:
        return await _record(session, done)
    found = await find_reservation(session, reference)
    if found is None:
        raise ReservationNotFound(f"No reservation with reference {reference!r}.")
    positions = await lock_verified_positions(session, found.owner_id, found.security_id)
    reservation = await find_reservation(session, reference, for_update=True)
    assert reservation is not None
    done = await _existing(session, deal_id)
    if done is not None:  # a concurrent call for the same deal won the locks first
        return await _record(session, done)
    if buyer_id == reservation.owner_id:
        raise ReservationConflict("The buyer already owns these shares.")
    outstanding = reservation.quantity - reservation.released_quantity - reservation.consumed_quantity
    if quantity <= 0 or quantity > outstanding:
        raise InsufficientShares(
            f"Reservation {reference!r} holds {outstanding} shares; {quantity} requested.",
            available=outstanding,
            requested=quantity,
        )
    by_holding = await outstanding_by_holding(session, reservation.id)
    first_source = next(p for p in positions if by_holding.get(p.id, 0) > 0)
    transfer_id = uuid.uuid4()
    resulting = Holding(
        owner_id=buyer_id,
        security_id=reservation.security_id,
        company_id=first_source.company_id,
        status=HoldingStatus.VERIFIED.value,
        cost_basis_amount=price.amount,
        cost_basis_currency=price.currency,
        acquisition_date=on_date or utcnow().date(),
        provenance=Provenance.TRANSFER.value,
        source_transfer_id=transfer_id,
        decided_at=utcnow(),
        decision_reason=f"transfer for deal {deal_id}",
    )
    session.add(resulting)
    await session.flush()
    transfer = Transfer(
        id=transfer_id,
        deal_id=deal_id,
        reservation_id=reservation.id,
        security_id=reservation.security_id,
        seller_id=reservation.owner_id,
        buyer_id=buyer_id,
        quantity=quantity,
        price_amount=price.amount,
        price_currency=price.currency,
        resulting_holding_id=resulting.id,
    )
    session.add(transfer)
    await session.flush()
    remaining = quantity
    for position in positions:
        take = min(remaining, by_holding.get(position.id, 0))
        if take <= 0:
            continue
        apply_movement(
            session,
            position,
            MovementKind.TRANSFER_OUT,
            take,
            idempotency_key=f"transfer_out:{deal_id}:{position.id}",
            reservation_id=reservation.id,
            transfer_id=transfer.id,
            reference=str(deal_id),
        )
        session.add(
            TransferLeg(
                transfer_id=transfer.id,
                source_holding_id=position.id,
                quantity=take,
                balance_holding_id=position.id if position.quantity > 0 else None,
                balance_quantity=position.quantity,
            )
        )
        remaining -= take
        if remaining == 0:
            break
    apply_movement(
        session,
        resulting,
        MovementKind.TRANSFER_IN,
        quantity,
        idempotency_key=f"transfer_in:{deal_id}",
        transfer_id=transfer.id,
        reference=str(deal_id),
    )
    reservation.consumed_quantity += quantity
    if reservation.released_quantity + reservation.consumed_quantity == reservation.quantity:
        reservation.status = ReservationStatus.CONSUMED.value
    reservation.updated_at = utcnow()
    session.add(reservation)
    await session.flush()
    record = await _record(session, transfer)
    await record_event(
        session,
        topic=topics.HOLDINGS,
        key=str(reservation.security_id),
        type=HOLDINGS_TRANSFERRED,
        source=SOURCE,
        subject=str(transfer.id),
        data=record.model_dump(mode="json") | {"reference": reference},
    )
    return record
