"""Reservations and transfers at service level: no overselling under concurrency, idempotency, conservation."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlmodel import col

from models.base import Money
from models.holdings import ConservationReport
from models.platform import OutboxEvent
from pap.db import SessionFactory, snapshot, transaction
from services import holdings
from services.errors import DomainError
from tests.market_support import new_security, verified_lot

PRICE = Money(amount=Decimal("10.00"), currency="USD")


async def available(sessions: SessionFactory, owner: uuid.UUID, security: uuid.UUID) -> int:
    async with transaction(sessions) as session:
        return await holdings.available_shares(session, owner, security)


async def conserved(sessions: SessionFactory, security: uuid.UUID) -> ConservationReport:
    async with transaction(sessions) as session:
        return await holdings.shares_conservation_report(session, security)


async def test_concurrent_reservations_never_oversell(sessions: SessionFactory) -> None:
    _, security = await new_security(sessions)
    seller = uuid.uuid4()
    await verified_lot(sessions, seller, security, 60)
    await verified_lot(sessions, seller, security, 40)

    async def attempt(i: int) -> int:
        try:
            async with transaction(sessions) as session:
                reservation = await holdings.reserve_shares(
                    session, owner_id=seller, security_id=security, quantity=9, reference=f"race-{security}-{i}"
                )
                return reservation.quantity
        except holdings.InsufficientShares:
            return 0

    results = await asyncio.gather(*(attempt(i) for i in range(20)))
    assert sum(results) == 99  # eleven whole reservations of 9 fit into 100, never a twelfth
    assert sorted(set(results)) == [0, 9]
    assert await available(sessions, seller, security) == 1
    report = await conserved(sessions, security)
    assert report.shares_conserved, report.discrepancies
    assert report.securities[0].reserved_total == 99


async def test_reservation_takes_oldest_lots_first_and_is_all_or_nothing(sessions: SessionFactory) -> None:
    _, security = await new_security(sessions)
    seller = uuid.uuid4()
    first = await verified_lot(sessions, seller, security, 30)
    second = await verified_lot(sessions, seller, security, 30)
    async with transaction(sessions) as session:
        await holdings.reserve_shares(
            session, owner_id=seller, security_id=security, quantity=40, reference=f"a-{first}"
        )
    async with transaction(sessions) as session:
        assert (await holdings.get_holding(session, first)).reserved_quantity == 30
        assert (await holdings.get_holding(session, second)).reserved_quantity == 10
    with pytest.raises(holdings.InsufficientShares) as raised:
        async with transaction(sessions) as session:
            await holdings.reserve_shares(
                session, owner_id=seller, security_id=security, quantity=21, reference=f"b-{first}"
            )
    assert raised.value.type == "insufficient-shares"
    assert await available(sessions, seller, security) == 20


async def test_unverified_shares_cannot_be_reserved(sessions: SessionFactory) -> None:
    from models.holdings import HoldingCreate

    _, security = await new_security(sessions)
    seller = uuid.uuid4()
    async with transaction(sessions) as session:
        await holdings.submit_holding(session, seller, HoldingCreate(security_id=security, quantity=500))
    with pytest.raises(holdings.InsufficientShares):
        async with transaction(sessions) as session:
            await holdings.reserve_shares(session, owner_id=seller, security_id=security, quantity=1, reference="x")


async def test_reserve_release_and_transfer_are_idempotent_by_reference(sessions: SessionFactory) -> None:
    _, security = await new_security(sessions)
    seller, buyer, deal = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await verified_lot(sessions, seller, security, 100)
    reference = f"order-{uuid.uuid4()}"

    for _ in range(2):
        async with transaction(sessions) as session:
            await holdings.reserve_shares(
                session, owner_id=seller, security_id=security, quantity=50, reference=reference
            )
    assert await available(sessions, seller, security) == 50
    with pytest.raises(holdings.ReservationConflict):
        async with transaction(sessions) as session:
            await holdings.reserve_shares(
                session, owner_id=seller, security_id=security, quantity=7, reference=reference
            )

    for _ in range(2):
        async with transaction(sessions) as session:
            record = await holdings.consume_reservation_and_transfer(
                session, reference=reference, buyer_id=buyer, quantity=30, price=PRICE, deal_id=deal
            )
    assert record.quantity == 30
    assert record.legs[0].balance_quantity == 70
    async with transaction(sessions) as session:
        bought = await holdings.get_holding(session, record.resulting_holding_id)
        transfers = (
            await session.execute(
                select(OutboxEvent).where(
                    col(OutboxEvent.type) == "holdings.transferred", col(OutboxEvent.subject) == str(record.id)
                )
            )
        ).all()
    assert (bought.owner_id, bought.quantity, bought.status, bought.provenance) == (buyer, 30, "verified", "transfer")
    assert bought.source_transfer_id == record.id
    assert len(transfers) == 1

    for _ in range(2):
        async with transaction(sessions) as session:
            after = await holdings.release_reservation(session, reference, 5, idempotency_key="partial-1")
    assert after is not None
    assert after.outstanding_quantity == 15
    for _ in range(2):
        async with transaction(sessions) as session:
            after = await holdings.release_reservation(session, reference)
    assert after is not None
    assert (after.outstanding_quantity, after.status) == (0, "consumed")
    async with transaction(sessions) as session:
        assert await holdings.release_reservation(session, f"never-{uuid.uuid4()}") is None
    assert await available(sessions, seller, security) == 70
    assert await available(sessions, buyer, security) == 30
    report = await conserved(sessions, security)
    assert report.shares_conserved, report.discrepancies
    assert (report.securities[0].transferred_out, report.securities[0].transferred_in) == (30, 30)


async def test_cannot_transfer_more_than_is_reserved(sessions: SessionFactory) -> None:
    _, security = await new_security(sessions)
    seller = uuid.uuid4()
    await verified_lot(sessions, seller, security, 100)
    async with transaction(sessions) as session:
        await holdings.reserve_shares(
            session, owner_id=seller, security_id=security, quantity=10, reference=f"r-{security}"
        )
    with pytest.raises(holdings.InsufficientShares):
        async with transaction(sessions) as session:
            await holdings.consume_reservation_and_transfer(
                session,
                reference=f"r-{security}",
                buyer_id=uuid.uuid4(),
                quantity=11,
                price=PRICE,
                deal_id=uuid.uuid4(),
            )
    assert await available(sessions, seller, security) == 90


async def test_conservation_report_finds_a_tampered_position(sessions: SessionFactory) -> None:
    from models.holdings import Holding

    _, security = await new_security(sessions)
    lot = await verified_lot(sessions, uuid.uuid4(), security, 100)
    async with transaction(sessions) as session:
        row = await session.get(Holding, lot)
        assert row is not None
        row.quantity = 150  # shares appearing without a movement
        session.add(row)
    try:
        report = await conserved(sessions, security)
    finally:  # the database is shared: put the row back so platform-wide reconciliation stays clean
        async with transaction(sessions) as session:
            restored = await session.get(Holding, lot)
            assert restored is not None
            restored.quantity = 100
    assert not report.shares_conserved
    kinds = {d.kind for d in report.discrepancies}
    assert {"position-quantity", "shares-created-or-destroyed"} <= kinds
    assert (await conserved(sessions, security)).shares_conserved


operations = st.lists(
    st.one_of(
        st.tuples(st.just("deposit"), st.integers(0, 2), st.integers(1, 50)),
        st.tuples(st.just("reserve"), st.integers(0, 2), st.integers(1, 60)),
        st.tuples(st.just("release"), st.integers(0, 7), st.one_of(st.none(), st.integers(1, 30))),
        st.tuples(st.just("transfer"), st.integers(0, 7), st.integers(0, 2), st.integers(1, 40)),
    ),
    min_size=1,
    max_size=14,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
async def test_random_ledger_operations_conserve_shares(sessions: SessionFactory, ops: list[tuple[Any, ...]]) -> None:
    """Whatever sequence of deposits, reservations, releases and transfers runs, shares are conserved."""
    _, security = await new_security(sessions)
    owners = [uuid.uuid4() for _ in range(3)]
    references: list[str] = []
    deposited = 0
    for op in ops:
        try:
            async with transaction(sessions) as session:
                if op[0] == "deposit":
                    _, who, qty = op
                    await verified_lot(sessions, owners[int(who)], security, int(qty))
                    deposited += int(qty)
                elif op[0] == "reserve":
                    _, who, qty = op
                    reference = f"h-{uuid.uuid4()}"
                    await holdings.reserve_shares(
                        session,
                        owner_id=owners[int(who)],
                        security_id=security,
                        quantity=int(qty),
                        reference=reference,
                    )
                    references.append(reference)
                elif op[0] == "release" and references:
                    _, idx, qty = op
                    await holdings.release_reservation(
                        session,
                        references[int(idx) % len(references)],
                        None if qty is None else int(qty),
                    )
                elif op[0] == "transfer" and references:
                    _, idx, who, qty = op
                    await holdings.consume_reservation_and_transfer(
                        session,
                        reference=references[int(idx) % len(references)],
                        buyer_id=owners[int(who)],
                        quantity=int(qty),
                        price=PRICE,
                        deal_id=uuid.uuid4(),
                    )
        except DomainError:
            pass  # refused operations (insufficient shares, buyer is seller) must leave no trace either
    report = await conserved(sessions, security)
    assert report.shares_conserved, report.discrepancies
    total = sum(s.verified_total for s in report.securities)
    assert total == deposited
    held = sum([await available(sessions, owner, security) for owner in owners])
    assert held == deposited - sum(s.reserved_total for s in report.securities)


async def test_a_report_in_a_snapshot_does_not_see_what_commits_while_it_runs(sessions: SessionFactory) -> None:
    """Reconciliation reads several tables: each must see the same moment, or a holding verified between two
    of its queries shows as shares created from nothing."""
    _, security = await new_security(sessions)
    await verified_lot(sessions, uuid.uuid4(), security, 100)
    async with snapshot(sessions) as session:
        before = await holdings.shares_conservation_report(session, security)
        await verified_lot(sessions, uuid.uuid4(), security, 50)  # committed by another transaction meanwhile
        during = await holdings.shares_conservation_report(session, security)
    assert during == before
    assert (await conserved(sessions, security)).securities != before.securities  # visible once it ends
