"""Property: any sequence of transfers, holds, posts and voids keeps the ledger balanced and never overdraws."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.payments import Leg
from pap.db import SessionFactory, transaction
from services import payments
from tests.payments_support import fund, new_user_cash, usd

USERS = 3
amounts = st.integers(min_value=1, max_value=6000).map(lambda cents: Decimal(cents) / 100)
pairs = st.tuples(st.integers(0, USERS - 1), st.integers(0, USERS - 1)).filter(lambda p: p[0] != p[1])
operations = st.lists(
    st.one_of(
        st.tuples(st.just("transfer"), pairs, amounts),
        st.tuples(st.just("hold"), pairs, amounts),
        st.tuples(st.just("post"), st.integers(0, 20)),
        st.tuples(st.just("void"), st.integers(0, 20)),
    ),
    min_size=1,
    max_size=12,
)


@dataclass
class Model:
    """The expected posted balances, maintained in plain Python alongside the ledger."""

    posted: list[Decimal]
    holds: list[tuple[uuid.UUID, int, int, Decimal]] = field(default_factory=list)
    state: dict[uuid.UUID, str] = field(default_factory=dict)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
async def test_random_ledger_operations_keep_the_trial_balance_at_zero(
    sessions: SessionFactory, ops: list[tuple[Any, ...]]
) -> None:
    codes = [new_user_cash() for _ in range(USERS)]
    for code in codes:
        await fund(sessions, code, "100.00")
    model = Model(posted=[Decimal("100.00")] * USERS)
    for op in ops:
        try:
            async with transaction(sessions) as session:
                if op[0] in ("transfer", "hold"):
                    (src, dst), amount = op[1], op[2]
                    assert isinstance(amount, Decimal)
                    leg = Leg(debit=codes[src], credit=codes[dst], amount=usd(str(amount)))
                    key = f"prop:{uuid.uuid4()}"
                    if op[0] == "transfer":
                        await payments.transfer(session, idempotency_key=key, legs=[leg], kind="test.prop")
                        model.posted[src] -= amount
                        model.posted[dst] += amount
                    else:
                        entry = await payments.hold(session, idempotency_key=key, legs=[leg], kind="test.prop")
                        model.holds.append((entry.id, src, dst, amount))
                        model.state[entry.id] = "pending"
                elif model.holds:
                    index = op[1]
                    assert isinstance(index, int)
                    entry_id, src, dst, amount = model.holds[index % len(model.holds)]
                    state = model.state[entry_id]
                    if op[0] == "post":
                        await payments.post_pending(session, entry_id)
                        assert state != "voided", "a voided hold was posted"
                        if state == "pending":
                            model.posted[src] -= amount
                            model.posted[dst] += amount
                            model.state[entry_id] = "posted"
                    else:
                        await payments.void_pending(session, entry_id)
                        assert state != "posted", "a posted entry was voided"
                        model.state[entry_id] = "voided"
        except (payments.InsufficientFunds, payments.EntryNotPending):
            pass
    async with transaction(sessions) as session:
        report = await payments.trial_balance(session)
        balances = [await payments.balance(session, code, "USD") for code in codes]
    assert report.ledger_balanced, report.discrepancies
    assert report.ledger_total.amount == 0
    assert [b.posted for b in balances] == model.posted
    reserved = [Decimal(0)] * USERS
    for entry_id, src, _, amount in model.holds:
        if model.state[entry_id] == "pending":
            reserved[src] += amount
    assert [b.pending_debits for b in balances] == reserved
    assert all(b.available >= 0 and b.posted >= 0 for b in balances)
    assert sum(model.posted) == Decimal("300.00")
