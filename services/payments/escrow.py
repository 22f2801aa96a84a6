"""Escrow per deal: funding instructions, provider payments into escrow, release to the seller, refunds.

Money paths (account codes; each code is one account per currency, so a deal books in its own):
- funding: `external:bank -> user:{payer}:cash -> escrow:deal:{deal}` in one entry, so the
  payer's own account shows what they paid; any excess over what is due is paid back
  `user:{payer}:cash -> external:bank` in a second entry (kind `payment.excess_refund`).
- release: `escrow:deal:{deal} -> user:{seller}:cash` (net), `-> platform:fees`, `-> company:{id}:fees`.
- refund: `escrow:deal:{deal} -> user:{payer}:cash` for what each payer has in escrow.
Every function is idempotent, because the deal workflow's activities may be retried.
"""

from __future__ import annotations

import uuid
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from events import topics
from events.outbox import record_event
from models.base import Money, utcnow
from models.payments import (
    ZERO,
    Account,
    FundingInstructions,
    JournalEntry,
    Leg,
    Payment,
    PaymentRead,
    PaymentStatus,
    PaymentUpdate,
    ProviderEvent,
    RefundResult,
    SettlementResult,
)
from pap.db import insert_unless_conflict
from services.deals.changes import announce
from services.errors import Conflict, InvalidInput, NotFound
from services.payments.ledger import QUANTUM, balance, entry_by_key, record_entry

SOURCE = "/pap/payments"
PAYMENT_RECEIVED = "payments.payment.received"
ESCROW_FUNDED = "payments.escrow.funded"
ESCROW_RELEASED = "payments.escrow.released"
ESCROW_REFUNDED = "payments.escrow.refunded"

EXTERNAL_BANK = "external:bank"
PLATFORM_FEES = "platform:fees"
CENT = Decimal("0.01")


class PaymentNotFound(NotFound):
    type = "payment-not-found"
    title = "Payment not found"


class PaymentMismatch(Conflict):
    type = "payment-mismatch"
    title = "The payment already exists with other terms"


class EscrowMismatch(Conflict):
    type = "escrow-mismatch"
    title = "The escrow does not hold what the operation expects"


def user_cash(user_id: uuid.UUID) -> str:
    return f"user:{user_id}:cash"


def escrow_account(deal_id: uuid.UUID) -> str:
    return f"escrow:deal:{deal_id}"


def company_fees(company_id: uuid.UUID) -> str:
    return f"company:{company_id}:fees"


def _positive(amount: Money) -> Decimal:
    if amount.amount <= 0 or amount.amount != amount.amount.quantize(QUANTUM):
        raise InvalidInput("The amount must be positive with at most 4 decimal places.")
    return amount.amount.quantize(QUANTUM)


def _money(amount: Decimal, currency: str) -> Money:
    return Money(amount=amount.quantize(QUANTUM), currency=currency)


async def _emit(session: AsyncSession, deal_id: uuid.UUID, type_: str, data: dict[str, Any]) -> None:
    await announce(session, deal_id)  # the deal's payments changed: wake its long polls
    await record_event(
        session,
        topic=topics.PAYMENTS,
        key=str(deal_id),
        type=type_,
        source=SOURCE,
        subject=str(deal_id),
        data={"deal_id": str(deal_id), **data},
    )


async def _deal_payments(session: AsyncSession, deal_id: uuid.UUID, *, lock: bool) -> list[Payment]:
    query = select(Payment).where(Payment.deal_id == deal_id).order_by(col(Payment.id))
    if lock:
        query = query.with_for_update()
    return list((await session.exec(query.execution_options(populate_existing=True))).all())


def _read(payment: Payment) -> PaymentRead:
    return PaymentRead(
        id=payment.id,
        deal_id=payment.deal_id,
        payer_id=payment.payer_id,
        amount=_money(payment.amount, payment.currency),
        received=_money(payment.received_amount, payment.currency),
        status=PaymentStatus(payment.status),
        reference=payment.reference,
    )


async def get_payment(session: AsyncSession, payment_id: uuid.UUID) -> PaymentRead:
    payment = await session.get(Payment, payment_id, populate_existing=True)
    if payment is None:
        raise PaymentNotFound(f"Payment {payment_id} does not exist.")
    return _read(payment)


async def deal_payments(session: AsyncSession, deal_id: uuid.UUID) -> list[PaymentRead]:
    """The payments of a deal (for `GET /v1/deals/{id}`)."""
    return [_read(p) for p in await _deal_payments(session, deal_id, lock=False)]


async def create_funding_instructions(
    session: AsyncSession, *, deal_id: uuid.UUID, buyer_id: uuid.UUID, amount: Money, reference: str
) -> FundingInstructions:
    """What the buyer must pay into the deal's escrow; one payment per deal and payer (a retry returns it,
    and a payer the deal comes back to finds their refunded payment open again)."""
    expected = _positive(amount)
    now = utcnow()
    inserted = await insert_unless_conflict(
        session,
        Payment,
        {
            "id": uuid.uuid4(),
            "deal_id": deal_id,
            "payer_id": buyer_id,
            "amount": expected,
            "currency": amount.currency,
            "received_amount": ZERO,
            "escrowed_amount": ZERO,
            "status": PaymentStatus.AWAITING_FUNDS.value,
            "reference": reference,
            "created_at": now,
            "updated_at": now,
        },
        index_elements=("deal_id", "payer_id"),
        returning="id",
    )
    created = inserted.first() is not None
    payment = (
        await session.exec(
            select(Payment)
            .where(Payment.deal_id == deal_id, Payment.payer_id == buyer_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).one()
    if payment.status == PaymentStatus.REFUNDED:  # the payer is the deal's buyer again (the company, by a 2nd ROFR)
        payment.status = PaymentStatus.AWAITING_FUNDS.value
        payment.received_amount = payment.escrowed_amount = ZERO  # what came before was refunded in full
        payment.updated_at = now
        session.add(payment)
        created = True
    if payment.amount != expected or payment.currency != amount.currency:
        raise PaymentMismatch(f"Deal {deal_id} already expects {payment.amount} {payment.currency} from this payer.")
    if created:  # asking again (a page view, a retry) changes nothing: no one waiting on the deal is woken
        await announce(session, deal_id)
    return FundingInstructions(
        payment_id=payment.id, amount=_money(payment.amount, payment.currency), reference=payment.reference
    )


async def open_funding(session: AsyncSession, *, deal_id: uuid.UUID, payer_id: uuid.UUID) -> FundingInstructions | None:
    """The payer's funding instructions for the deal, once the deal's workflow created them and while they are
    open (not refunded); None otherwise. Only the workflow creates them: a page view never opens a payment."""
    payment = (
        await session.exec(
            select(Payment).where(
                Payment.deal_id == deal_id,
                Payment.payer_id == payer_id,
                col(Payment.status) != PaymentStatus.REFUNDED.value,
            )
        )
    ).first()
    if payment is None:
        return None
    return FundingInstructions(
        payment_id=payment.id, amount=_money(payment.amount, payment.currency), reference=payment.reference
    )


async def record_provider_payment(
    session: AsyncSession, *, event_id: str, payment_id: uuid.UUID, status: str, amount: Money
) -> PaymentUpdate:
    """Apply one provider confirmation once (by `event_id`): book it into escrow, refund any excess."""
    payment = await session.get(Payment, payment_id, with_for_update=True, populate_existing=True)
    if payment is None:
        raise PaymentNotFound(f"Payment {payment_id} does not exist.")
    if status not in ("succeeded", "failed"):
        raise InvalidInput(f"Unknown provider status {status!r}.")
    value = _positive(amount)
    inserted = await insert_unless_conflict(
        session,
        ProviderEvent,
        {
            "id": uuid.uuid4(),
            "event_id": event_id,
            "payment_id": payment_id,
            "status": status,
            "amount": value,
            "currency": amount.currency,
            "received_at": utcnow(),
        },
        index_elements=("event_id",),
        returning="id",
    )
    zero = _money(ZERO, payment.currency)
    if inserted.scalar_one_or_none() is None:
        return await _update(session, payment, duplicate=True, applied=zero, excess=zero, newly_funded=False)
    if status == "succeeded" and amount.currency != payment.currency:
        return await _bounce_other_currency(session, payment, event_id, amount)

    if status == "failed":
        if payment.status == PaymentStatus.AWAITING_FUNDS:
            payment.status = PaymentStatus.FAILED
            payment.updated_at = utcnow()
            session.add(payment)
        return await _update(session, payment, duplicate=False, applied=zero, excess=zero, newly_funded=False)

    closed = payment.status == PaymentStatus.REFUNDED
    due = ZERO if closed else payment.amount - payment.received_amount
    into_escrow = min(value, due)
    excess = value - into_escrow
    cash = user_cash(payment.payer_id)
    legs = [Leg(debit=EXTERNAL_BANK, credit=cash, amount=_money(value, payment.currency))]
    if into_escrow > 0:
        legs.append(
            Leg(debit=cash, credit=escrow_account(payment.deal_id), amount=_money(into_escrow, payment.currency))
        )
    reference = str(payment.deal_id)
    await record_entry(
        session,
        idempotency_key=f"provider-event:{event_id}",
        legs=legs,
        kind="payment.received",
        reference=reference,
        pending=False,
    )
    if excess > 0:
        await record_entry(
            session,
            idempotency_key=f"provider-excess:{event_id}",  # never an event id's own key (ids may hold ":")
            legs=[Leg(debit=cash, credit=EXTERNAL_BANK, amount=_money(excess, payment.currency))],
            kind="payment.excess_refund",
            reference=reference,
            pending=False,
        )
    was_funded = payment.status == PaymentStatus.FUNDED
    payment.received_amount += into_escrow
    payment.escrowed_amount += into_escrow
    if not closed:
        funded_now = payment.received_amount >= payment.amount
        payment.status = PaymentStatus.FUNDED if funded_now else PaymentStatus.PARTIALLY_FUNDED
    payment.updated_at = utcnow()
    session.add(payment)
    await session.flush()
    await _emit_received(session, payment, event_id, _money(value, payment.currency), into_escrow, excess)
    update = await _update(
        session,
        payment,
        duplicate=False,
        applied=_money(into_escrow, payment.currency),
        excess=_money(excess, payment.currency),
        newly_funded=not was_funded and payment.status == PaymentStatus.FUNDED,
    )
    if update.newly_funded and update.funded:
        escrow = await escrow_balance(session, payment.deal_id, payment.currency)
        await _emit(
            session,
            payment.deal_id,
            ESCROW_FUNDED,
            {
                "amount": escrow.model_dump(mode="json"),
                "payment_id": str(payment.id),
                "payer_id": str(payment.payer_id),
            },
        )
    return update


async def _emit_received(
    session: AsyncSession, payment: Payment, event_id: str, amount: Money, into_escrow: Decimal, excess: Decimal
) -> None:
    """`payments.payment.received`: what arrived, what went into escrow and what went straight back."""
    await _emit(
        session,
        payment.deal_id,
        PAYMENT_RECEIVED,
        {
            "payment_id": str(payment.id),
            "payer_id": str(payment.payer_id),
            "event_id": event_id,
            "amount": amount.model_dump(mode="json"),
            "into_escrow": format(into_escrow, "f"),
            "refunded_excess": format(excess, "f"),
            "status": payment.status,
        },
    )


async def _bounce_other_currency(
    session: AsyncSession, payment: Payment, event_id: str, amount: Money
) -> PaymentUpdate:
    """Money the rail collected in another currency than the payment's: booked (the event is kept) and sent
    straight back, in its own currency, so it is neither lost to a refused webhook nor mixed into escrow."""
    cash = user_cash(payment.payer_id)
    await record_entry(
        session,
        idempotency_key=f"provider-event:{event_id}",
        legs=[
            Leg(debit=EXTERNAL_BANK, credit=cash, amount=amount),
            Leg(debit=cash, credit=EXTERNAL_BANK, amount=amount),
        ],
        kind="payment.wrong_currency_returned",
        reference=str(payment.deal_id),
        pending=False,
    )
    await _emit_received(session, payment, event_id, amount, ZERO, amount.amount)
    zero = _money(ZERO, payment.currency)
    return await _update(session, payment, duplicate=False, applied=zero, excess=amount, newly_funded=False)


async def _update(
    session: AsyncSession, payment: Payment, *, duplicate: bool, applied: Money, excess: Money, newly_funded: bool
) -> PaymentUpdate:
    """The deal counts as funded when every payment of it is funded."""
    payments = await _deal_payments(session, payment.deal_id, lock=False)
    # A refunded payment is closed (deal cancelled, or its payer defaulted and was replaced).
    active = [p for p in payments if p.status != PaymentStatus.REFUNDED]
    funded = bool(active) and all(p.status == PaymentStatus.FUNDED for p in active)
    return PaymentUpdate(
        payment_id=payment.id,
        deal_id=payment.deal_id,
        payer_id=payment.payer_id,
        status=PaymentStatus(payment.status),
        duplicate=duplicate,
        applied=applied,
        received=_money(payment.received_amount, payment.currency),
        amount_due=_money(max(payment.amount - payment.received_amount, ZERO), payment.currency),
        refunded_excess=excess,
        funded=funded,
        newly_funded=newly_funded,
    )


def fee(gross: Decimal, bps: int) -> Decimal:
    """A fee of `bps` basis points, half-even to the cent: what documents state is what the ledger books."""
    return (gross * bps / Decimal(10_000)).quantize(CENT, rounding=ROUND_HALF_EVEN)


async def release_escrow_to_seller(
    session: AsyncSession,
    *,
    deal_id: uuid.UUID,
    seller_id: uuid.UUID,
    gross: Money,
    platform_fee_bps: int,
    company_id: uuid.UUID | None,
    company_fee_bps: int,
) -> SettlementResult:
    """Pay the escrow out in one linked entry: seller net, platform fee, company fee; idempotent per deal.

    Fees round half-even to cents; the seller's leg absorbs the remainder so the legs balance exactly.
    """
    if not 0 <= platform_fee_bps <= 10_000 or not 0 <= company_fee_bps <= 10_000:
        raise InvalidInput("Fees are between 0 and 10000 basis points.")
    amount = _positive(gross)
    currency = gross.currency
    platform_fee = fee(amount, platform_fee_bps)
    company_fee = fee(amount, company_fee_bps) if company_id is not None else ZERO
    net = amount - platform_fee - company_fee
    if net < 0:
        raise InvalidInput("The fees exceed the gross amount.")
    escrow = escrow_account(deal_id)
    legs = [
        Leg(debit=escrow, credit=code, amount=_money(value, currency))
        for code, value in (
            (user_cash(seller_id), net),
            (PLATFORM_FEES, platform_fee),
            (company_fees(company_id) if company_id else "", company_fee),
        )
        if value > 0
    ]
    key = f"escrow-release:{deal_id}"
    payments = await _deal_payments(session, deal_id, lock=True)
    if await entry_by_key(session, key) is None:
        held = await balance(session, escrow, currency)
        if held.posted != amount:
            raise EscrowMismatch(f"Escrow of deal {deal_id} holds {held.posted} {held.currency}, not {amount}.")
    entry, created = await record_entry(
        session, idempotency_key=key, legs=legs, kind="escrow.release", reference=str(deal_id), pending=False
    )
    result = SettlementResult(
        deal_id=deal_id,
        entry_id=entry.id,
        gross=_money(amount, currency),
        seller_net=_money(net, currency),
        platform_fee=_money(platform_fee, currency),
        company_fee=_money(company_fee, currency),
    )
    if created:
        for payment in payments:
            payment.escrowed_amount = ZERO
            payment.updated_at = utcnow()
            session.add(payment)
        await _emit(
            session,
            deal_id,
            ESCROW_RELEASED,
            {"seller_id": str(seller_id), **result.model_dump(mode="json", exclude={"deal_id"})},
        )
    return result


async def refund_escrow(session: AsyncSession, *, deal_id: uuid.UUID, reason: str) -> RefundResult:
    """Return what the deal's escrow holds to each payer's cash account; zero escrow is a no-op."""
    payments = await _deal_payments(session, deal_id, lock=True)
    escrow = escrow_account(deal_id)
    currency = payments[0].currency if payments else "USD"
    held = await balance(session, escrow, currency)
    for payment in payments:
        if payment.status != PaymentStatus.REFUNDED:
            payment.status = PaymentStatus.REFUNDED  # closed: money arriving later is paid back
            payment.updated_at = utcnow()
            session.add(payment)
    if held.posted == 0:
        await session.flush()
        return RefundResult(deal_id=deal_id, refunded=_money(ZERO, held.currency), entry_id=None, payers=[])
    owed = [p for p in payments if p.escrowed_amount > 0]
    if sum((p.escrowed_amount for p in owed), ZERO) != held.posted:
        raise EscrowMismatch(f"Escrow of deal {deal_id} holds {held.posted}, which its payments do not explain.")
    legs = [
        Leg(debit=escrow, credit=user_cash(p.payer_id), amount=_money(p.escrowed_amount, held.currency)) for p in owed
    ]
    previous = (
        await session.exec(
            select(func.count())
            .select_from(JournalEntry)
            .where(JournalEntry.kind == "escrow.refund", JournalEntry.reference == str(deal_id))
        )
    ).one()
    entry, _ = await record_entry(
        session,
        idempotency_key=f"escrow-refund:{deal_id}:{previous}",
        legs=legs,
        kind="escrow.refund",
        reference=str(deal_id),
        pending=False,
    )
    for payment in owed:
        payment.escrowed_amount = ZERO
        session.add(payment)
    await session.flush()
    refunded = _money(held.posted, held.currency)
    payers = [p.payer_id for p in owed]
    await _emit(
        session,
        deal_id,
        ESCROW_REFUNDED,
        {"amount": refunded.model_dump(mode="json"), "reason": reason, "payers": [str(p) for p in payers]},
    )
    return RefundResult(deal_id=deal_id, refunded=refunded, entry_id=entry.id, payers=payers)


async def escrow_balance(session: AsyncSession, deal_id: uuid.UUID, currency: str | None = None) -> Money:
    """What the deal's escrow holds, in `currency` or else the currency of the deal's payments.

    Ledger accounts are per (code, currency); a deal's payments, hence its escrow, have one currency.
    """
    if currency is None:
        currency = (
            await session.exec(
                select(Payment.currency).where(Payment.deal_id == deal_id).order_by(col(Payment.created_at)).limit(1)
            )
        ).first() or "USD"
    held = await balance(session, escrow_account(deal_id), currency)
    return _money(held.posted, held.currency)


async def open_escrows(session: AsyncSession) -> list[tuple[uuid.UUID, Money]]:
    """Every deal whose escrow holds money, once per currency held (for reconciliation)."""
    result = await session.exec(
        select(Account)
        .where(Account.kind == "escrow", Account.posted_balance != 0)
        .order_by(col(Account.code), col(Account.currency))
        .execution_options(populate_existing=True)
    )
    return [
        (uuid.UUID(account.code.removeprefix("escrow:deal:")), _money(account.posted_balance, account.currency))
        for account in result.all()
    ]
