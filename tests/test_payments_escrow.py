"""Escrow per deal: funding by provider payments, partial and over-funding, release net of fees, refunds."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import text

from models.base import Money
from models.payments import PaymentStatus, PaymentUpdate
from pap.db import SessionFactory, transaction
from services import payments
from services.admin.reconciliation import reconciliation_report
from tests.payments_support import eur, posted, usd


async def _instructions(sessions: SessionFactory, amount: str = "1000.00") -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    deal_id, buyer_id = uuid.uuid4(), uuid.uuid4()
    async with transaction(sessions) as session:
        instructions = await payments.create_funding_instructions(
            session, deal_id=deal_id, buyer_id=buyer_id, amount=usd(amount), reference=f"DEAL-{deal_id.hex[:8]}"
        )
    return deal_id, buyer_id, instructions.payment_id


async def _pay(
    sessions: SessionFactory, payment_id: uuid.UUID, amount: str, status: str = "succeeded"
) -> PaymentUpdate:
    async with transaction(sessions) as session:
        return await payments.record_provider_payment(
            session, event_id=f"evt_{uuid.uuid4().hex}", payment_id=payment_id, status=status, amount=usd(amount)
        )


async def _events(sessions: SessionFactory, deal_id: uuid.UUID) -> list[str]:
    async with transaction(sessions) as session:
        rows = await session.execute(
            text("SELECT type FROM platform.outbox_event WHERE topic = 'pap.payments' AND key = :k ORDER BY seq"),
            {"k": str(deal_id)},
        )
        return [r[0] for r in rows.all()]


async def _escrow(sessions: SessionFactory, deal_id: uuid.UUID) -> Decimal:
    async with transaction(sessions) as session:
        return (await payments.escrow_balance(session, deal_id)).amount


async def test_funding_instructions_are_idempotent_per_deal_and_payer(sessions: SessionFactory) -> None:
    deal_id, buyer_id = uuid.uuid4(), uuid.uuid4()
    async with transaction(sessions) as session:
        first = await payments.create_funding_instructions(
            session, deal_id=deal_id, buyer_id=buyer_id, amount=usd("250.00"), reference="REF-1"
        )
    async with transaction(sessions) as session:
        second = await payments.create_funding_instructions(
            session, deal_id=deal_id, buyer_id=buyer_id, amount=usd("250.00"), reference="REF-1"
        )
    assert first == second
    assert first.amount == usd("250.00")


async def test_a_payer_the_deal_comes_back_to_can_fund_it_again(sessions: SessionFactory) -> None:
    """The company buys by ROFR, defaults and is refunded; a backup buyer follows, and the company exercises
    its ROFR again: its payment opens again, and paying it funds the deal (it used to be bounced for ever)."""
    deal_id, company, payment_id = await _instructions(sessions)
    await _pay(sessions, payment_id, "400.00")
    async with transaction(sessions) as session:
        await payments.refund_escrow(session, deal_id=deal_id, reason="the buyer missed the funding deadline")
    assert await _escrow(sessions, deal_id) == 0

    async with transaction(sessions) as session:
        again = await payments.create_funding_instructions(
            session, deal_id=deal_id, buyer_id=company, amount=usd("1000.00"), reference="DEAL-again"
        )
    assert again.payment_id == payment_id
    paid = await _pay(sessions, payment_id, "1000.00")
    assert paid.status == PaymentStatus.FUNDED and paid.funded and paid.refunded_excess == usd("0")
    assert await _escrow(sessions, deal_id) == Decimal("1000.00")


async def test_full_payment_funds_escrow_once_and_emits_events(sessions: SessionFactory) -> None:
    deal_id, buyer_id, payment_id = await _instructions(sessions)
    event_id = f"evt_{uuid.uuid4().hex}"
    async with transaction(sessions) as session:
        update = await payments.record_provider_payment(
            session, event_id=event_id, payment_id=payment_id, status="succeeded", amount=usd("1000.00")
        )
    async with transaction(sessions) as session:
        again = await payments.record_provider_payment(
            session, event_id=event_id, payment_id=payment_id, status="succeeded", amount=usd("1000.00")
        )
    assert (update.funded, update.newly_funded, update.duplicate) == (True, True, False)
    assert (again.duplicate, again.funded, again.newly_funded) == (True, True, False)
    assert await _escrow(sessions, deal_id) == Decimal("1000.00")
    assert await posted(sessions, payments.user_cash(buyer_id)) == 0
    assert await _events(sessions, deal_id) == ["payments.payment.received", "payments.escrow.funded"]


async def test_partial_payment_leaves_the_rest_due_until_paid(sessions: SessionFactory) -> None:
    deal_id, _, payment_id = await _instructions(sessions)
    first = await _pay(sessions, payment_id, "400.00")
    assert first.status == PaymentStatus.PARTIALLY_FUNDED
    assert first.amount_due == usd("600.00")
    assert first.funded is False
    assert await _escrow(sessions, deal_id) == Decimal("400.00")
    second = await _pay(sessions, payment_id, "600.00")
    assert second.status == PaymentStatus.FUNDED
    assert second.funded is True
    assert await _escrow(sessions, deal_id) == Decimal("1000.00")
    assert (await _events(sessions, deal_id)).count("payments.escrow.funded") == 1


async def test_over_funding_keeps_the_expected_amount_and_refunds_the_excess(sessions: SessionFactory) -> None:
    deal_id, buyer_id, payment_id = await _instructions(sessions)
    update = await _pay(sessions, payment_id, "1250.00")
    assert update.refunded_excess == usd("250.00")
    assert update.funded is True
    assert await _escrow(sessions, deal_id) == Decimal("1000.00")
    assert await posted(sessions, payments.user_cash(buyer_id)) == 0
    async with transaction(sessions) as session:
        kinds = await session.execute(
            text("SELECT kind FROM payments.journal_entry WHERE reference = :r ORDER BY created_at"),
            {"r": str(deal_id)},
        )
        assert sorted(r[0] for r in kinds.all()) == ["payment.excess_refund", "payment.received"]


async def test_an_event_named_like_another_events_excess_refund_is_still_applied(sessions: SessionFactory) -> None:
    """Provider event ids are the provider's: `E:excess` is a payment of its own, not E's refund replayed."""
    deal_id, _, payment_id = await _instructions(sessions)
    event_id = f"evt_{uuid.uuid4().hex}"
    async with transaction(sessions) as session:
        await payments.record_provider_payment(
            session, event_id=event_id, payment_id=payment_id, status="succeeded", amount=usd("1100.00")
        )
    _, _, other_payment = await _instructions(sessions)
    async with transaction(sessions) as session:
        named_alike = await payments.record_provider_payment(
            session, event_id=f"{event_id}:excess", payment_id=other_payment, status="succeeded", amount=usd("40.00")
        )
    assert named_alike.applied == usd("40.00") and not named_alike.duplicate
    assert await _escrow(sessions, deal_id) == Decimal("1000.00")


async def test_failed_payment_is_recorded_and_moves_no_money(sessions: SessionFactory) -> None:
    deal_id, _, payment_id = await _instructions(sessions)
    update = await _pay(sessions, payment_id, "1000.00", status="failed")
    assert update.status == PaymentStatus.FAILED
    assert update.funded is False
    assert await _escrow(sessions, deal_id) == 0
    async with transaction(sessions) as session:
        count = await session.execute(
            text("SELECT count(*) FROM payments.provider_event WHERE payment_id = :p"), {"p": payment_id}
        )
        assert count.scalar_one() == 1


async def test_release_pays_the_seller_net_of_platform_and_company_fees(sessions: SessionFactory) -> None:
    deal_id, _, payment_id = await _instructions(sessions, "333.33")
    await _pay(sessions, payment_id, "333.33")
    seller, company = uuid.uuid4(), uuid.uuid4()
    fees_before = await posted(sessions, "platform:fees")
    async with transaction(sessions) as session:
        result = await payments.release_escrow_to_seller(
            session,
            deal_id=deal_id,
            seller_id=seller,
            gross=usd("333.33"),
            platform_fee_bps=100,
            company_id=company,
            company_fee_bps=25,
        )
    # 1% of 333.33 = 3.3333 -> 3.33; 0.25% = 0.833325 -> 0.83; the seller absorbs the remainder.
    assert (result.platform_fee, result.company_fee, result.seller_net) == (usd("3.33"), usd("0.83"), usd("329.17"))
    assert await _escrow(sessions, deal_id) == 0
    assert await posted(sessions, payments.user_cash(seller)) == Decimal("329.17")
    assert await posted(sessions, f"company:{company}:fees") == Decimal("0.83")
    assert await posted(sessions, "platform:fees") - fees_before == Decimal("3.33")
    async with transaction(sessions) as session:
        again = await payments.release_escrow_to_seller(
            session,
            deal_id=deal_id,
            seller_id=seller,
            gross=usd("333.33"),
            platform_fee_bps=100,
            company_id=company,
            company_fee_bps=25,
        )
    assert again.entry_id == result.entry_id
    assert await posted(sessions, payments.user_cash(seller)) == Decimal("329.17")
    assert (await _events(sessions, deal_id)).count("payments.escrow.released") == 1


async def _release(sessions: SessionFactory, deal_id: uuid.UUID, gross: str) -> None:
    async with transaction(sessions) as session:
        await payments.release_escrow_to_seller(
            session,
            deal_id=deal_id,
            seller_id=uuid.uuid4(),
            gross=usd(gross),
            platform_fee_bps=100,
            company_id=None,
            company_fee_bps=0,
        )


async def test_release_of_more_than_escrow_holds_is_refused(sessions: SessionFactory) -> None:
    deal_id, _, payment_id = await _instructions(sessions, "100.00")
    await _pay(sessions, payment_id, "60.00")
    with pytest.raises(payments.EscrowMismatch) as raised:
        await _release(sessions, deal_id, "100.00")
    assert raised.value.status == 409
    assert await _escrow(sessions, deal_id) == Decimal("60.00")


async def test_refund_returns_escrow_to_the_payer_once(sessions: SessionFactory) -> None:
    deal_id, buyer_id, payment_id = await _instructions(sessions, "500.00")
    await _pay(sessions, payment_id, "500.00")
    async with transaction(sessions) as session:
        refund = await payments.refund_escrow(session, deal_id=deal_id, reason="deal cancelled")
    async with transaction(sessions) as session:
        again = await payments.refund_escrow(session, deal_id=deal_id, reason="deal cancelled")
        open_deals = [d for d, _ in await payments.open_escrows(session)]
    assert refund.refunded == usd("500.00")
    assert refund.payers == [buyer_id]
    assert again.refunded.amount == 0
    assert again.entry_id is None
    assert await _escrow(sessions, deal_id) == 0
    assert await posted(sessions, payments.user_cash(buyer_id)) == Decimal("500.00")
    assert deal_id not in open_deals
    assert (await _events(sessions, deal_id)).count("payments.escrow.refunded") == 1
    async with transaction(sessions) as session:
        assert (await payments.get_payment(session, payment_id)).status == PaymentStatus.REFUNDED


async def test_funded_escrow_is_listed_as_open(sessions: SessionFactory) -> None:
    deal_id, _, payment_id = await _instructions(sessions, "75.00")
    await _pay(sessions, payment_id, "75.00")
    async with transaction(sessions) as session:
        escrows = dict(await payments.open_escrows(session))
    assert escrows[deal_id] == usd("75.00")


async def _funded_deal(sessions: SessionFactory, buyer_id: uuid.UUID, due: Money, paid: Money) -> PaymentUpdate:
    async with transaction(sessions) as session:
        instructions = await payments.create_funding_instructions(
            session, deal_id=uuid.uuid4(), buyer_id=buyer_id, amount=due, reference=f"DEAL-{due.currency}"
        )
        return await payments.record_provider_payment(
            session,
            event_id=f"evt_{uuid.uuid4().hex}",
            payment_id=instructions.payment_id,
            status="succeeded",
            amount=paid,
        )


async def _settle(
    sessions: SessionFactory, deal_id: uuid.UUID, seller: uuid.UUID, company: uuid.UUID, gross: Money
) -> None:
    async with transaction(sessions) as session:
        await payments.release_escrow_to_seller(
            session,
            deal_id=deal_id,
            seller_id=seller,
            gross=gross,
            platform_fee_bps=100,
            company_id=company,
            company_fee_bps=25,
        )


async def test_a_deal_in_a_second_currency_is_funded_and_released_net_of_fees_in_that_currency(
    sessions: SessionFactory,
) -> None:
    """`external:bank`, `platform:fees` and the parties' accounts first used in USD also take EUR."""
    buyer, seller, company = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    dollars = await _funded_deal(sessions, buyer, usd("200.00"), usd("200.00"))
    await _settle(sessions, dollars.deal_id, seller, company, usd("200.00"))
    fees_before = await posted(sessions, "platform:fees", "EUR")

    euros = await _funded_deal(sessions, buyer, eur("200.00"), eur("210.00"))

    assert (euros.funded, euros.applied, euros.refunded_excess) == (True, eur("200.00"), eur("10.00"))
    async with transaction(sessions) as session:
        assert await payments.escrow_balance(session, euros.deal_id) == eur("200.00")
        assert dict(await payments.open_escrows(session))[euros.deal_id] == eur("200.00")
    await _settle(sessions, euros.deal_id, seller, company, eur("200.00"))
    # 1% platform fee 2.00, 0.25% company fee 0.50: the seller nets 197.50 in each currency.
    for currency in ("USD", "EUR"):
        assert await posted(sessions, payments.user_cash(seller), currency) == Decimal("197.50")
        assert await posted(sessions, f"company:{company}:fees", currency) == Decimal("0.50")
        assert await posted(sessions, payments.user_cash(buyer), currency) == 0
    assert await posted(sessions, "platform:fees", "EUR") - fees_before == Decimal("2.00")
    async with transaction(sessions) as session:
        assert await payments.escrow_balance(session, euros.deal_id) == eur("0")
        accounts = await session.execute(
            text("SELECT currency FROM payments.account WHERE code = :code ORDER BY currency"),
            {"code": payments.user_cash(seller)},
        )
        assert [row[0] for row in accounts.all()] == ["EUR", "USD"]
        report = await payments.trial_balance(session)
        reconciliation = await reconciliation_report(session)
    assert report.ledger_balanced, report.discrepancies
    assert report.totals["USD"] == report.totals["EUR"] == 0
    assert reconciliation.ledger_balanced, reconciliation.discrepancies
    assert reconciliation.ledger_totals["EUR"] == 0


async def test_a_cancelled_deal_in_a_second_currency_is_refunded_in_that_currency(sessions: SessionFactory) -> None:
    buyer = uuid.uuid4()
    await _funded_deal(sessions, buyer, usd("80.00"), usd("80.00"))
    euros = await _funded_deal(sessions, buyer, eur("80.00"), eur("80.00"))
    async with transaction(sessions) as session:
        refund = await payments.refund_escrow(session, deal_id=euros.deal_id, reason="deal cancelled")
    assert refund.refunded == eur("80.00")
    assert await posted(sessions, payments.user_cash(buyer), "EUR") == Decimal("80.00")
    assert await posted(sessions, payments.user_cash(buyer), "USD") == 0
    assert await _escrow(sessions, euros.deal_id) == 0
