"""Test data helpers for the payments context (unique accounts per test)."""

from __future__ import annotations

import uuid
from decimal import Decimal

from models.base import Money
from models.payments import Leg
from pap.db import SessionFactory, transaction
from services import payments


def usd(amount: str | int) -> Money:
    return Money(amount=Decimal(amount), currency="USD")


def eur(amount: str | int) -> Money:
    return Money(amount=Decimal(amount), currency="EUR")


def new_user_cash() -> str:
    return payments.user_cash(uuid.uuid4())


async def fund(sessions: SessionFactory, code: str, amount: str, currency: str = "USD") -> None:
    """Money arriving from the outside world into `code`."""
    async with transaction(sessions) as session:
        await payments.transfer(
            session,
            idempotency_key=f"test-fund:{uuid.uuid4()}",
            legs=[Leg(debit="external:bank", credit=code, amount=Money(amount=Decimal(amount), currency=currency))],
            kind="test.deposit",
        )


async def posted(sessions: SessionFactory, code: str, currency: str = "USD") -> Decimal:
    async with transaction(sessions) as session:
        return (await payments.balance(session, code, currency)).posted


async def available(sessions: SessionFactory, code: str, currency: str = "USD") -> Decimal:
    async with transaction(sessions) as session:
        return (await payments.balance(session, code, currency)).available
