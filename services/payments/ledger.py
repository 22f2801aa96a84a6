"""The double-entry ledger: idempotent linked transfers and two-phase holds (Formance/TigerBeetle style).

An entry is a list of linked legs, each moving an amount from a debit account to a
credit account; its postings (debit negative, credit positive) sum to zero per
currency, so every entry balances by construction, is re-checked here, and is
checked once more at commit by the deferred constraint trigger. All legs of an
entry are booked in one savepoint: one failing leg leaves nothing booked.

An account is identified by its code and currency, as a TigerBeetle ledger or a
Formance asset: `external:bank` or `user:{id}:cash` holds a separate balance in each
currency it is used with, created on first use; an entry uses each code in one currency.

Available balance = posted balance - pending debits: a hold reserves funds so they
cannot be spent twice. Accounts are locked `FOR UPDATE ORDER BY id` to avoid
deadlocks between transfers touching the same accounts in another order.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import Money, utcnow
from models.payments import ZERO, Account, EntryStatus, JournalEntry, Leg, Posting
from pap.db import insert_unless_conflict
from services.errors import Conflict, InvalidInput, NotFound

QUANTUM = Decimal("0.0001")

_ACCOUNT_KINDS: tuple[tuple[re.Pattern[str], str, bool], ...] = (
    (re.compile(r"^external:[a-z0-9_-]+$"), "external", True),
    (re.compile(r"^user:[0-9a-f-]{36}:cash$"), "user", False),
    (re.compile(r"^escrow:deal:[0-9a-f-]{36}$"), "escrow", False),
    (re.compile(r"^platform:[a-z0-9_-]+$"), "platform", False),
    (re.compile(r"^company:[0-9a-f-]{36}:fees$"), "company", False),
)
"""Account code patterns: (pattern, kind, allow_negative). Only the outside world may go negative."""


class InsufficientFunds(InvalidInput):
    type = "insufficient-funds"
    title = "Insufficient funds"


class CurrencyMismatch(InvalidInput):
    type = "currency-mismatch"
    title = "Currency does not match the account"


class InvalidLeg(InvalidInput):
    type = "invalid-leg"
    title = "A leg of the transfer is not valid"


class IdempotencyConflict(Conflict):
    type = "idempotency-conflict"
    title = "The idempotency key was used for another entry"


class EntryNotPending(Conflict):
    type = "entry-not-pending"
    title = "The entry is not a pending hold"


class EntryNotFound(NotFound):
    type = "entry-not-found"
    title = "Journal entry not found"


@dataclass(frozen=True)
class Balance:
    code: str
    currency: str
    posted: Decimal
    pending_debits: Decimal
    pending_credits: Decimal

    @property
    def available(self) -> Decimal:
        return self.posted - self.pending_debits


def account_kind(code: str) -> tuple[str, bool]:
    for pattern, kind, allow_negative in _ACCOUNT_KINDS:
        if pattern.match(code):
            return kind, allow_negative
    raise InvalidLeg(f"Unknown account code {code!r}.")


def _leg_amount(leg: Leg) -> Decimal:
    amount = leg.amount.amount
    if amount <= 0:
        raise InvalidLeg("Every leg moves a positive amount.")
    if amount != amount.quantize(QUANTUM):
        raise InvalidLeg("Amounts have at most 4 decimal places.")
    if leg.debit == leg.credit:
        raise InvalidLeg("A leg needs two different accounts.")
    account_kind(leg.debit)
    account_kind(leg.credit)
    return amount.quantize(QUANTUM)


def _fingerprint(kind: str, reference: str | None, legs: Sequence[Leg], pending: bool) -> str:
    """What makes two requests with one idempotency key 'the same' (expiry is excluded: retries recompute it)."""
    content = [
        kind,
        reference,
        pending,
        [[leg.debit, leg.credit, format(_leg_amount(leg), "f"), leg.amount.currency] for leg in legs],
    ]
    return hashlib.sha256(json.dumps(content).encode()).hexdigest()


async def entry_by_key(session: AsyncSession, idempotency_key: str) -> JournalEntry | None:
    result = await session.exec(
        select(JournalEntry)
        .where(JournalEntry.idempotency_key == idempotency_key)
        .execution_options(populate_existing=True)
    )
    return result.first()


async def _lock_accounts(session: AsyncSession, currencies: dict[str, str]) -> dict[str, Account]:
    """Create missing (code, currency) accounts, then lock them in id order; returns them by code.

    An account is identified by code and currency, so `external:bank` used in USD and then in EUR
    is two accounts; within one entry a code has one currency, so the code alone is a key here.
    """
    rows = []
    for code in sorted(currencies):
        kind, allow_negative = account_kind(code)
        rows.append(
            {
                "id": uuid.uuid4(),
                "code": code,
                "currency": currencies[code],
                "kind": kind,
                "allow_negative": allow_negative,
                "posted_balance": ZERO,
                "pending_debits": ZERO,
                "pending_credits": ZERO,
                "version": 0,
                "created_at": utcnow(),
            }
        )
    table = Account.__table__  # type: ignore[attr-defined]
    await session.execute(insert(table).values(rows).on_conflict_do_nothing(index_elements=["code", "currency"]))
    result = await session.exec(
        select(Account)
        .where(tuple_(col(Account.code), col(Account.currency)).in_(list(currencies.items())))
        .order_by(col(Account.id))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {account.code: account for account in result.all()}


async def _lock_accounts_by_id(session: AsyncSession, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Account]:
    result = await session.exec(
        select(Account)
        .where(col(Account.id).in_(list(set(ids))))
        .order_by(col(Account.id))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {account.id: account for account in result.all()}


def _same_or_conflict(entry: JournalEntry, fingerprint: str) -> JournalEntry:
    if entry.fingerprint != fingerprint:
        raise IdempotencyConflict(f"Idempotency key {entry.idempotency_key!r} was used with other content.")
    return entry


async def record_entry(
    session: AsyncSession,
    *,
    idempotency_key: str,
    legs: Sequence[Leg],
    kind: str,
    reference: str | None,
    pending: bool,
    expires_at: datetime | None = None,
) -> tuple[JournalEntry, bool]:
    """Book linked legs as one entry (posted, or pending when a hold); returns (entry, created now)."""
    if not legs:
        raise InvalidLeg("An entry needs at least one leg.")
    fingerprint = _fingerprint(kind, reference, legs, pending)
    existing = await entry_by_key(session, idempotency_key)
    if existing is not None:
        return _same_or_conflict(existing, fingerprint), False

    currencies: dict[str, str] = {}
    for leg in legs:
        for code in (leg.debit, leg.credit):
            if currencies.setdefault(code, leg.amount.currency) != leg.amount.currency:
                raise CurrencyMismatch(f"Account {code} is used with two currencies in one entry.")

    async with session.begin_nested():
        accounts = await _lock_accounts(session, currencies)
        entry_id = uuid.uuid4()
        now = utcnow()
        inserted = await insert_unless_conflict(
            session,
            JournalEntry,
            {
                "id": entry_id,
                "idempotency_key": idempotency_key,
                "fingerprint": fingerprint,
                "kind": kind,
                "reference": reference,
                "status": (EntryStatus.PENDING if pending else EntryStatus.POSTED).value,
                "created_at": now,
                "expires_at": expires_at if pending else None,
                "posted_at": None if pending else now,
            },
            index_elements=("idempotency_key",),
            returning="id",
        )
        created = inserted.scalar_one_or_none() is not None
        if created:
            await _book(session, entry_id, legs, accounts, pending=pending)
    entry = await entry_by_key(session, idempotency_key)
    assert entry is not None
    return (entry, True) if created else (_same_or_conflict(entry, fingerprint), False)


async def _book(
    session: AsyncSession, entry_id: uuid.UUID, legs: Sequence[Leg], accounts: dict[str, Account], *, pending: bool
) -> None:
    debits: dict[str, Decimal] = defaultdict(lambda: ZERO)
    credits: dict[str, Decimal] = defaultdict(lambda: ZERO)
    totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
    postings: list[Posting] = []
    for leg in legs:
        amount = _leg_amount(leg)
        currency = leg.amount.currency
        debits[leg.debit] += amount
        credits[leg.credit] += amount
        for code, signed in ((leg.debit, -amount), (leg.credit, amount)):
            totals[currency] += signed
            postings.append(Posting(entry_id=entry_id, account_id=accounts[code].id, amount=signed, currency=currency))
    unbalanced = {currency: total for currency, total in totals.items() if total != 0}
    if unbalanced:
        raise InvalidLeg(f"The entry does not balance: {unbalanced}.")

    for code, account in accounts.items():
        debit, credit = debits[code], credits[code]
        if not debit or account.allow_negative:
            continue
        if pending and account.posted_balance - account.pending_debits - debit < 0:
            raise InsufficientFunds(f"Account {code} cannot reserve {debit} {account.currency}.", account=code)
        if not pending and debit > credit and account.posted_balance + credit - debit - account.pending_debits < 0:
            raise InsufficientFunds(f"Account {code} cannot pay {debit - credit} {account.currency}.", account=code)
    for code, account in accounts.items():
        if pending:
            account.pending_debits += debits[code]
            account.pending_credits += credits[code]
        else:
            account.posted_balance += credits[code] - debits[code]
        account.version += 1
        session.add(account)
    session.add_all(postings)
    await session.flush()


async def transfer(
    session: AsyncSession, *, idempotency_key: str, legs: Sequence[Leg], kind: str, reference: str | None = None
) -> JournalEntry:
    """Book linked legs as one posted entry: all succeed or none; the same key replays, another content is 409."""
    entry, _ = await record_entry(
        session, idempotency_key=idempotency_key, legs=legs, kind=kind, reference=reference, pending=False
    )
    return entry


async def hold(
    session: AsyncSession,
    *,
    idempotency_key: str,
    legs: Sequence[Leg],
    kind: str,
    reference: str | None = None,
    expires_at: datetime | None = None,
) -> JournalEntry:
    """Reserve funds as a pending entry (phase one); `post_pending` or `void_pending` completes it."""
    entry, _ = await record_entry(
        session,
        idempotency_key=idempotency_key,
        legs=legs,
        kind=kind,
        reference=reference,
        pending=True,
        expires_at=expires_at,
    )
    return entry


async def _locked_entry(session: AsyncSession, entry_id: uuid.UUID | None, idempotency_key: str | None) -> JournalEntry:
    query = select(JournalEntry).with_for_update().execution_options(populate_existing=True)
    if entry_id is not None:
        query = query.where(JournalEntry.id == entry_id)
    elif idempotency_key is not None:
        query = query.where(JournalEntry.idempotency_key == idempotency_key)
    else:
        raise InvalidInput("Give an entry id or an idempotency key.")
    entry = (await session.exec(query)).first()
    if entry is None:
        raise EntryNotFound("No such journal entry.")
    return entry


async def _settle_pending(session: AsyncSession, entry: JournalEntry, outcome: EntryStatus) -> None:
    """Release the reservation of a pending entry and, when posting, book it."""
    postings = (await session.exec(select(Posting).where(Posting.entry_id == entry.id))).all()
    accounts = await _lock_accounts_by_id(session, (p.account_id for p in postings))
    for posting in postings:
        account = accounts[posting.account_id]
        if posting.amount < 0:
            account.pending_debits += posting.amount
        else:
            account.pending_credits -= posting.amount
        if outcome is EntryStatus.POSTED:
            account.posted_balance += posting.amount
    for account in accounts.values():
        account.version += 1
        session.add(account)
    now = utcnow()
    entry.status = outcome
    if outcome is EntryStatus.POSTED:
        entry.posted_at = now
    else:
        entry.voided_at = now
    session.add(entry)
    await session.flush()


async def post_pending(
    session: AsyncSession, entry_id: uuid.UUID | None = None, *, idempotency_key: str | None = None
) -> JournalEntry:
    """Phase two: book a hold; posting it again returns it unchanged, a voided or expired one is 409."""
    entry = await _locked_entry(session, entry_id, idempotency_key)
    if entry.status == EntryStatus.POSTED:
        return entry
    if entry.status != EntryStatus.PENDING:
        raise EntryNotPending(f"The hold is {entry.status}.")
    if entry.expires_at is not None and entry.expires_at <= utcnow():
        raise EntryNotPending("The hold has expired.")
    await _settle_pending(session, entry, EntryStatus.POSTED)
    return entry


async def void_pending(
    session: AsyncSession, entry_id: uuid.UUID | None = None, *, idempotency_key: str | None = None
) -> JournalEntry:
    """Cancel a hold, releasing its reservation; voiding again is a no-op, a posted one is 409."""
    entry = await _locked_entry(session, entry_id, idempotency_key)
    if entry.status in (EntryStatus.VOIDED, EntryStatus.EXPIRED):
        return entry
    if entry.status != EntryStatus.PENDING:
        raise EntryNotPending(f"The entry is {entry.status}.")
    await _settle_pending(session, entry, EntryStatus.VOIDED)
    return entry


async def expire_pending_holds(session: AsyncSession, now: datetime | None = None, *, limit: int | None = None) -> int:
    """Time out (up to `limit` of) the holds whose `expires_at` passed, releasing what they reserved; returns
    how many (locked ones are left to the next run). The consumers' housekeeping runs it every round."""
    now = now or utcnow()
    result = await session.exec(
        select(JournalEntry)
        .where(JournalEntry.status == EntryStatus.PENDING, col(JournalEntry.expires_at) <= now)
        .order_by(col(JournalEntry.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    entries = result.all()
    for entry in entries:
        await _settle_pending(session, entry, EntryStatus.EXPIRED)
    return len(entries)


async def balance(session: AsyncSession, code: str, currency: str) -> Balance:
    """The cached balances of the account `code` in `currency` (zero when it does not exist yet)."""
    account = (
        await session.exec(
            select(Account)
            .where(Account.code == code, Account.currency == currency)
            .execution_options(populate_existing=True)
        )
    ).first()
    if account is None:
        return Balance(code, currency, ZERO, ZERO, ZERO)
    return Balance(code, currency, account.posted_balance, account.pending_debits, account.pending_credits)


async def postings_of(session: AsyncSession, entry_id: uuid.UUID) -> list[tuple[str, Money]]:
    """The (account code, signed amount) postings of an entry."""
    result = await session.exec(
        select(Account, Posting)
        .join(Posting, col(Account.id) == col(Posting.account_id))
        .where(Posting.entry_id == entry_id)
    )
    return [
        (account.code, Money(amount=posting.amount, currency=posting.currency)) for account, posting in result.all()
    ]
