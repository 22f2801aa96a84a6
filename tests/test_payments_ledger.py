"""The double-entry ledger against the real database: balance, idempotency, overdraft, holds."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from models.base import utcnow
from models.payments import EntryStatus, Leg
from pap.db import SessionFactory, transaction
from pap.settings import Settings
from services import payments
from services.payments.ledger import entry_by_key, postings_of
from tests.payments_support import available, eur, fund, new_user_cash, posted, usd
from workers.housekeeping import Housekeeper, Retention


async def test_transfer_books_postings_that_sum_to_zero_and_updates_cached_balances(sessions: SessionFactory) -> None:
    alice, bob = new_user_cash(), new_user_cash()
    await fund(sessions, alice, "100.00")
    async with transaction(sessions) as session:
        entry = await payments.transfer(
            session,
            idempotency_key=f"t:{uuid.uuid4()}",
            legs=[Leg(debit=alice, credit=bob, amount=usd("40.25"))],
            kind="test.transfer",
        )
        legs = await postings_of(session, entry.id)
    assert entry.status == EntryStatus.POSTED
    assert sorted((code, m.amount) for code, m in legs) == sorted([(alice, Decimal("-40.25")), (bob, Decimal("40.25"))])
    assert sum(m.amount for _, m in legs) == 0
    assert await posted(sessions, alice) == Decimal("59.75")
    assert await posted(sessions, bob) == Decimal("40.25")


async def test_unbalanced_posting_written_directly_is_rejected_by_the_deferred_trigger(
    sessions: SessionFactory,
) -> None:
    alice = new_user_cash()
    await fund(sessions, alice, "10.00")
    entry_id = uuid.uuid4()

    async def forge_one_sided_entry() -> None:
        async with transaction(sessions) as session:
            await session.execute(
                text(
                    "INSERT INTO payments.journal_entry (id, idempotency_key, fingerprint, kind, status, created_at) "
                    "VALUES (:id, :key, 'x', 'test.forged', 'posted', now())"
                ),
                {"id": entry_id, "key": f"forged:{entry_id}"},
            )
            await session.execute(
                text(
                    "INSERT INTO payments.posting (id, entry_id, account_id, amount, currency) "
                    "SELECT gen_random_uuid(), :entry, id, 5, 'USD' FROM payments.account "
                    "WHERE code = :code AND currency = 'USD'"
                ),
                {"entry": entry_id, "code": alice},
            )
            # Both statements succeed: the balance check is deferred to commit.

    with pytest.raises(DBAPIError, match="does not balance"):
        await forge_one_sided_entry()
    async with transaction(sessions) as session:
        assert await entry_by_key(session, f"forged:{entry_id}") is None


async def test_same_idempotency_key_twice_books_one_entry(sessions: SessionFactory) -> None:
    alice, bob = new_user_cash(), new_user_cash()
    await fund(sessions, alice, "50.00")
    key = f"t:{uuid.uuid4()}"
    legs = [Leg(debit=alice, credit=bob, amount=usd("20.00"))]
    async with transaction(sessions) as session:
        first = await payments.transfer(session, idempotency_key=key, legs=legs, kind="test.transfer")
    async with transaction(sessions) as session:
        second = await payments.transfer(session, idempotency_key=key, legs=legs, kind="test.transfer")
    assert first.id == second.id
    assert await posted(sessions, alice) == Decimal("30.00")
    assert await posted(sessions, bob) == Decimal("20.00")


async def test_same_idempotency_key_with_other_legs_is_a_conflict(sessions: SessionFactory) -> None:
    alice, bob = new_user_cash(), new_user_cash()
    await fund(sessions, alice, "50.00")
    key = f"t:{uuid.uuid4()}"
    async with transaction(sessions) as session:
        await payments.transfer(
            session, idempotency_key=key, legs=[Leg(debit=alice, credit=bob, amount=usd("20"))], kind="test.transfer"
        )
    with pytest.raises(payments.IdempotencyConflict) as raised:
        async with transaction(sessions) as session:
            await payments.transfer(
                session,
                idempotency_key=key,
                legs=[Leg(debit=alice, credit=bob, amount=usd("21"))],
                kind="test.transfer",
            )
    assert raised.value.status == 409
    assert await posted(sessions, alice) == Decimal("30.00")


async def test_user_account_cannot_be_overdrawn(sessions: SessionFactory) -> None:
    alice, bob = new_user_cash(), new_user_cash()
    await fund(sessions, alice, "10.00")
    with pytest.raises(payments.InsufficientFunds) as raised:
        async with transaction(sessions) as session:
            await payments.transfer(
                session,
                idempotency_key=f"t:{uuid.uuid4()}",
                legs=[Leg(debit=alice, credit=bob, amount=usd("10.01"))],
                kind="test.transfer",
            )
    assert raised.value.status == 422
    assert raised.value.type == "insufficient-funds"
    assert await posted(sessions, alice) == Decimal("10.00")


async def test_concurrent_spends_never_overdraw_an_account(sessions: SessionFactory) -> None:
    payer = new_user_cash()
    await fund(sessions, payer, "100.00")

    async def spend(i: int) -> bool:
        try:
            async with transaction(sessions) as session:
                await payments.transfer(
                    session,
                    idempotency_key=f"spend:{payer}:{i}",
                    legs=[Leg(debit=payer, credit=new_user_cash(), amount=usd("15.00"))],
                    kind="test.spend",
                )
        except payments.InsufficientFunds:
            return False
        return True

    results = await asyncio.gather(*(spend(i) for i in range(20)))
    assert sum(results) == 6
    assert await posted(sessions, payer) == Decimal("10.00")


async def test_a_failing_leg_leaves_nothing_of_the_entry_booked(sessions: SessionFactory) -> None:
    alice, bob, broke = new_user_cash(), new_user_cash(), new_user_cash()
    await fund(sessions, alice, "50.00")
    key = f"t:{uuid.uuid4()}"
    async with transaction(sessions) as session:
        with pytest.raises(payments.InsufficientFunds):
            await payments.transfer(
                session,
                idempotency_key=key,
                legs=[
                    Leg(debit=alice, credit=bob, amount=usd("50.00")),
                    Leg(debit=broke, credit=bob, amount=usd("1.00")),
                ],
                kind="test.linked",
            )
        # The caller's transaction goes on and commits: the entry's savepoint was rolled back.
    async with transaction(sessions) as session:
        assert await entry_by_key(session, key) is None
    assert await posted(sessions, alice) == Decimal("50.00")
    assert await posted(sessions, bob) == Decimal("0")


async def test_one_account_code_keeps_a_separate_balance_per_currency(sessions: SessionFactory) -> None:
    alice, bob = new_user_cash(), new_user_cash()
    await fund(sessions, alice, "100.00")  # `external:bank` has been used in USD ...
    await fund(sessions, alice, "30.00", "EUR")  # ... and takes EUR as well, as does alice's own code
    async with transaction(sessions) as session:
        await payments.transfer(
            session,
            idempotency_key=f"t:{uuid.uuid4()}",
            legs=[Leg(debit=alice, credit=bob, amount=eur("12.50"))],
            kind="test.transfer",
        )
        in_euros = await payments.balance(session, alice, "EUR")
        report = await payments.trial_balance(session)
    assert (in_euros.currency, in_euros.posted) == ("EUR", Decimal("17.50"))
    assert await posted(sessions, alice) == Decimal("100.00")
    assert await posted(sessions, bob, "EUR") == Decimal("12.50")
    assert await posted(sessions, bob) == 0
    assert report.ledger_balanced, report.discrepancies
    assert report.totals["USD"] == report.totals["EUR"] == 0


async def test_money_held_in_one_currency_cannot_be_spent_in_another(sessions: SessionFactory) -> None:
    alice = new_user_cash()
    await fund(sessions, alice, "5.00")
    with pytest.raises(payments.InsufficientFunds):
        async with transaction(sessions) as session:
            await payments.transfer(
                session,
                idempotency_key=f"t:{uuid.uuid4()}",
                legs=[Leg(debit=alice, credit=new_user_cash(), amount=eur("1"))],
                kind="test.transfer",
            )
    assert await posted(sessions, alice) == Decimal("5.00")
    assert await posted(sessions, alice, "EUR") == 0


async def test_one_entry_cannot_use_an_account_code_in_two_currencies(sessions: SessionFactory) -> None:
    alice = new_user_cash()
    await fund(sessions, alice, "5.00")
    await fund(sessions, alice, "5.00", "EUR")
    with pytest.raises(payments.CurrencyMismatch):
        async with transaction(sessions) as session:
            await payments.transfer(
                session,
                idempotency_key=f"t:{uuid.uuid4()}",
                legs=[
                    Leg(debit=alice, credit=new_user_cash(), amount=usd("1")),
                    Leg(debit=alice, credit=new_user_cash(), amount=eur("1")),
                ],
                kind="test.transfer",
            )


async def test_hold_reserves_funds_so_they_cannot_be_spent_twice_and_post_books_them(sessions: SessionFactory) -> None:
    alice, bob = new_user_cash(), new_user_cash()
    await fund(sessions, alice, "100.00")
    async with transaction(sessions) as session:
        held = await payments.hold(
            session,
            idempotency_key=f"h:{uuid.uuid4()}",
            legs=[Leg(debit=alice, credit=bob, amount=usd("70.00"))],
            kind="test.hold",
        )
    assert held.status == EntryStatus.PENDING
    assert await available(sessions, alice) == Decimal("30.00")
    assert await posted(sessions, bob) == Decimal("0")
    with pytest.raises(payments.InsufficientFunds):
        async with transaction(sessions) as session:
            await payments.transfer(
                session,
                idempotency_key=f"t:{uuid.uuid4()}",
                legs=[Leg(debit=alice, credit=bob, amount=usd("40.00"))],
                kind="test.transfer",
            )
    async with transaction(sessions) as session:
        done = await payments.post_pending(session, held.id)
    async with transaction(sessions) as session:
        again = await payments.post_pending(session, held.id)
        bal = await payments.balance(session, alice, "USD")
    assert done.status == again.status == EntryStatus.POSTED
    assert (bal.posted, bal.pending_debits, bal.available) == (Decimal("30.00"), Decimal(0), Decimal("30.00"))
    assert await posted(sessions, bob) == Decimal("70.00")


async def test_void_releases_a_hold_and_a_voided_hold_cannot_be_posted(sessions: SessionFactory) -> None:
    alice, bob = new_user_cash(), new_user_cash()
    await fund(sessions, alice, "100.00")
    key = f"h:{uuid.uuid4()}"
    async with transaction(sessions) as session:
        await payments.hold(
            session, idempotency_key=key, legs=[Leg(debit=alice, credit=bob, amount=usd("80"))], kind="test.hold"
        )
    async with transaction(sessions) as session:
        voided = await payments.void_pending(session, idempotency_key=key)
    assert voided.status == EntryStatus.VOIDED
    assert await available(sessions, alice) == Decimal("100.00")
    with pytest.raises(payments.EntryNotPending):
        async with transaction(sessions) as session:
            await payments.post_pending(session, idempotency_key=key)
    assert await posted(sessions, bob) == Decimal("0")


async def test_expired_holds_time_out_and_release_their_funds(sessions: SessionFactory) -> None:
    alice, bob = new_user_cash(), new_user_cash()
    await fund(sessions, alice, "100.00")
    async with transaction(sessions) as session:
        held = await payments.hold(
            session,
            idempotency_key=f"h:{uuid.uuid4()}",
            legs=[Leg(debit=alice, credit=bob, amount=usd("60"))],
            kind="test.hold",
            expires_at=utcnow() + timedelta(minutes=5),
        )
    async with transaction(sessions) as session:
        await payments.expire_pending_holds(session, utcnow())
    assert await available(sessions, alice) == Decimal("40.00")
    async with transaction(sessions) as session:
        expired = await payments.expire_pending_holds(session, utcnow() + timedelta(minutes=6))
    assert expired >= 1
    assert await available(sessions, alice) == Decimal("100.00")
    with pytest.raises(payments.EntryNotPending):
        async with transaction(sessions) as session:
            await payments.post_pending(session, held.id)
    async with transaction(sessions) as session:
        assert (await entry_by_key(session, held.idempotency_key)).status == EntryStatus.EXPIRED  # type: ignore[union-attr]


async def test_housekeeping_times_out_expired_holds(sessions: SessionFactory, settings: Settings) -> None:
    alice, bob = new_user_cash(), new_user_cash()
    await fund(sessions, alice, "100.00")
    async with transaction(sessions) as session:
        held = await payments.hold(
            session,
            idempotency_key=f"h:{uuid.uuid4()}",
            legs=[Leg(debit=alice, credit=bob, amount=usd("60"))],
            kind="test.hold",
            expires_at=utcnow() - timedelta(seconds=1),
        )
    assert await available(sessions, alice) == Decimal("40.00")
    housekeeper = Housekeeper(sessions, Retention.from_settings(settings), interval=60, batch_size=100)
    assert (await housekeeper.prune_once(asyncio.Event()))["payments.expired_hold"] >= 1
    assert await available(sessions, alice) == Decimal("100.00")
    async with sessions() as session:
        assert (await entry_by_key(session, held.idempotency_key)).status == EntryStatus.EXPIRED  # type: ignore[union-attr]
