"""Money and share conservation on the deal's rarer paths: each test pins one path where a retried, raced
or replaced step must neither move money or shares twice nor leave them stuck (escrow, reservations,
order fills). The first six and the last each failed before their fix; the three before it guard paths found sound.

Workflow tests run DealExecution on a per-test time-skipping server with the real activities against
the real database (as test_deal_workflow.py does); the others call the services directly.
"""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from temporalio import activity
from temporalio.client import WorkflowUpdateStage
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.deals import DealActivities
from events.envelope import CloudEvent
from models.base import Money
from models.deals import CancelInput, DealRef, DealStage, DealState, IssuerDecision, SettlementConfirmation
from models.documents import DocumentKind
from models.marketplace import OrderStatus, Side
from pap.db import SessionFactory, transaction
from services import deals, holdings, marketplace, payments
from services.admin.reconciliation import reconciliation_report
from services.documents.rendering import money as rendered_money
from services.documents.rendering import render_text
from services.holdings import reservations
from tests.deal_support import Parties, TokenFor, brokered_deal, parties
from tests.deals.workflow_support import (
    at_stage,
    backup_buyer_offered,
    escrow,
    fund,
    place_order,
    sign_all,
    start,
    state,
    through_issuer,
    to_funding,
    update_and_finish,
)
from tests.factories import make_verified_buyer
from tests.marketplace_support import order_body, place
from tests.support import eventually, waiting_for_a_lock
from workers.deal_signals import DealSignalForwarder
from workers.registry import activity_methods
from workflows.deals import DealExecutionWorkflow

pytestmark = pytest.mark.usefixtures("platform")


async def _seller_available(sessions: SessionFactory, p: Parties) -> int:
    async with sessions() as session:
        return await holdings.available_shares(session, p.seller.id, p.security_id)


# -- 1. a stale `funded` flag survives the buyer's replacement ----------------------------------------------


async def test_a_defaulted_buyers_late_funding_signal_does_not_fund_the_backup_buyer(
    time_skipping_env: WorkflowEnvironment,
    worker: str,
    people: Parties,
    sessions: SessionFactory,
    api: httpx.AsyncClient,
) -> None:
    """Buyer A pays just before the funding deadline, but the API's signal is lost; the deadline fires,
    A is refunded and backup B is offered the trade. The outbox backstop (DealSignalForwarder) then
    delivers A's `payments.escrow.funded`. That signal must not count as B's funding: B never paid."""
    backup = await make_verified_buyer(api, compliance_headers=people.compliance)
    await place(api, backup.headers, order_body(people.security_id, "buy", 10, "60.00"))
    params = await brokered_deal(sessions, people, quantity=10, price="50")
    total = Money(amount=Decimal(500), currency="USD")
    handle = await start(time_skipping_env, worker, params)
    await to_funding(handle, params)

    async with transaction(sessions) as session:  # A pays in full; the webhook's signal never arrives
        instructions = await payments.create_funding_instructions(
            session, deal_id=params.deal_id, buyer_id=people.buyer.id, amount=total, reference="t"
        )
        await payments.record_provider_payment(
            session, event_id=str(uuid.uuid4()), payment_id=instructions.payment_id, status="succeeded", amount=total
        )
    await backup_buyer_offered(time_skipping_env, handle, backup.id)
    assert await escrow(sessions, params.deal_id) == 0  # A was refunded when B took over

    async with sessions() as session:  # the backstop consumer delivers A's funded event, as in production
        row = (
            await session.execute(
                text(
                    "SELECT id, source, type, subject, data FROM platform.outbox_event "
                    "WHERE key = :k AND type = 'payments.escrow.funded' ORDER BY seq LIMIT 1"
                ),
                {"k": str(params.deal_id)},
            )
        ).one()
        event = CloudEvent(id=row[0], source=row[1], type=row[2], subject=row[3], data=row[4])
        await DealSignalForwarder(time_skipping_env.client)(session, event)

    await to_funding(handle, params)  # B's transfer notice, the issuer's decision, B's documents
    waiting = await state(handle)
    assert waiting.stage is DealStage.AWAITING_FUNDING and not waiting.funded, waiting  # B has not paid
    assert await escrow(sessions, params.deal_id) == 0

    await fund(sessions, handle, params, backup.id)  # B pays: now the deal moves on
    await at_stage(handle, DealStage.SETTLING)
    assert await escrow(sessions, params.deal_id) == 500
    await update_and_finish(handle, "cancel", CancelInput(reason="test cleanup", actor_id=uuid.uuid4()))
    assert await escrow(sessions, params.deal_id) == 0


# -- 2. a brokered deal cancelled after a backup bid was taken ---------------------------------------------


async def test_cancelling_a_brokered_deal_gives_the_backup_buyers_bid_back(
    time_skipping_env: WorkflowEnvironment,
    worker: str,
    people: Parties,
    sessions: SessionFactory,
    api: httpx.AsyncClient,
) -> None:
    """find_backup_buyer fills the backup's resting bid for the deal (take_backup_bid). When that deal is
    then cancelled, release_shares only releases the brokered reservation: the backup's fill must be given
    back too, or their bid stays `filled` by a deal that no longer exists."""
    backup = await make_verified_buyer(api, compliance_headers=people.compliance)
    bid = await place(api, backup.headers, order_body(people.security_id, "buy", 10, "60.00"))
    params = await brokered_deal(sessions, people, quantity=10, price="50")
    handle = await start(time_skipping_env, worker, params)
    await to_funding(handle, params)
    await backup_buyer_offered(time_skipping_env, handle, backup.id)  # the first buyer never pays
    async with sessions() as session:
        taken = await marketplace.get_order(session, uuid.UUID(bid["id"]))
    assert taken.filled_quantity == 10  # the backup's bid is now committed to this deal

    done = await update_and_finish(
        handle, "cancel", CancelInput(reason="deal manager stopped it", actor_id=uuid.uuid4())
    )
    assert done is DealStage.CANCELLED
    assert await _seller_available(sessions, people) == 1_000
    async with sessions() as session:
        after = await marketplace.get_order(session, uuid.UUID(bid["id"]))
        active_fills = (
            await session.execute(
                text("SELECT count(*) FROM marketplace.fill WHERE deal_id = :d AND status = 'active'"),
                {"d": params.deal_id},
            )
        ).scalar_one()
    assert active_fills == 0, "the cancelled deal still holds an active fill on the backup buyer's bid"
    assert after.filled_quantity == 0, f"backup bid left {after.status.value} with {after.filled_quantity} filled"


# -- 3. ROFR exercise on a matched deal ----------------------------------------------------------------------


async def test_rofr_exercise_on_a_matched_deal_gives_the_replaced_buyers_fill_back(
    time_skipping_env: WorkflowEnvironment,
    worker: str,
    people: Parties,
    sessions: SessionFactory,
    api: httpx.AsyncClient,
) -> None:
    """The company exercises its ROFR and buys the shares itself. The matched buyer never gets them, so
    their bid must not stay `filled` by this deal once it closes."""
    await place_order(sessions, people.seller.id, people, Side.SELL, "50")
    matched = await place_order(sessions, people.buyer.id, people, Side.BUY, "50")
    assert matched.order.status is OrderStatus.FILLED and len(matched.deals) == 1
    params = matched.deals[0].model_copy(update={"index_search_attributes": False})
    handle = await start(time_skipping_env, worker, params)
    await through_issuer(handle, params, IssuerDecision.EXERCISE)
    await at_stage(handle, DealStage.AWAITING_SIGNATURES)
    assert (await state(handle)).buyer_id == params.company_id
    await sign_all(handle, params.deal_id)
    await at_stage(handle, DealStage.AWAITING_FUNDING)
    async with sessions() as session:
        projection = await deals.get_deal(session, params.deal_id)
    assert projection.buyer_id == params.company_id and projection.defaulted_buyer_ids == []  # replaced, not defaulted
    instructions = await api.post(f"/v1/deals/{params.deal_id}/funding", headers=people.issuer)  # the company pays
    assert instructions.status_code == 200, instructions.text
    await fund(sessions, handle, params, params.company_id)
    await at_stage(handle, DealStage.SETTLING)
    closed = await update_and_finish(handle, "confirm_settlement", SettlementConfirmation(actor_id=params.company_id))
    assert closed is DealStage.CLOSED
    async with sessions() as session:
        assert await holdings.available_shares(session, params.company_id, people.security_id) == 10
        assert await holdings.available_shares(session, people.buyer.id, people.security_id) == 0
        bid = await marketplace.get_order(session, matched.order.id)
    assert bid.filled_quantity == 0, (
        f"the replaced buyer's bid is {bid.status.value} with {bid.filled_quantity} shares filled by a deal "
        "whose shares went to the company"
    )


# -- 4. a settlement confirmation accepted while a cancel is compensating ------------------------------------


async def test_settlement_confirmation_is_refused_once_a_cancel_is_under_way(
    time_skipping_env: WorkflowEnvironment,
    people: Parties,
    sessions: SessionFactory,
    real_activities: DealActivities,
) -> None:
    """A deal manager cancels a funded deal in `settling`; while the compensations run (stage still
    `settling`), the issuer confirms it recorded the transfer. The confirmation must be refused, not
    accepted and then silently overridden by the refund."""
    compensating = asyncio.Event()
    proceed = asyncio.Event()

    @activity.defn(name="deals.void_signatures")
    async def void_signatures(ref: DealRef) -> int:
        compensating.set()
        await asyncio.wait_for(proceed.wait(), timeout=60)
        return await real_activities.void_signatures(ref)

    queue = f"deals-paths-held-{uuid.uuid4()}"
    methods = [m for m in activity_methods(real_activities) if m.__name__ != "void_signatures"]
    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[DealExecutionWorkflow],
        activities=[*methods, void_signatures],
    ):
        params = await brokered_deal(sessions, people, quantity=10, price="50")
        handle = await start(time_skipping_env, queue, params)
        await to_funding(handle, params)
        await fund(sessions, handle, params, people.buyer.id)
        await at_stage(handle, DealStage.SETTLING)
        await handle.start_update(
            "cancel",
            CancelInput(reason="deal manager stopped it", actor_id=uuid.uuid4()),
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
            result_type=DealState,
        )
        await asyncio.wait_for(compensating.wait(), timeout=30)
        assert (await state(handle)).stage is DealStage.SETTLING
        try:
            await handle.start_update(
                "confirm_settlement",
                SettlementConfirmation(actor_id=params.company_id),
                wait_for_stage=WorkflowUpdateStage.ACCEPTED,
                result_type=DealState,
            )
        finally:
            proceed.set()
        assert await handle.result() is DealStage.CANCELLED
        history = await handle.fetch_history()
    accepted = [
        e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        for e in history.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    ]
    assert await escrow(sessions, params.deal_id) == 0
    assert "confirm_settlement" not in accepted, (
        f"accepted updates {accepted}: the issuer's settlement confirmation was accepted (it answers with the "
        "cancelled state) while the cancel refunded the buyer and released the seller's shares"
    )


# -- 5. growing a sell order while one of its deals settles ----------------------------------------------------


async def test_growing_a_sell_order_while_its_deal_settles_leaves_no_shares_reserved_forever(
    api: httpx.AsyncClient,
    sessions: SessionFactory,
    token_for: TokenFor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Growing a sell order moves its reservation: release what the old one still holds, reserve that plus
    the growth under a new reference. A deal's transfer_shares can consume the old reservation at any
    moment; here it commits right after the amendment first looks the reservation up. What is still held
    must be read under the seller's locks, or the shares already transferred are reserved again, forever."""
    p = await parties(api, sessions, token_for)
    sell = await place_order(sessions, p.seller.id, p, Side.SELL, "50", quantity=20)
    bought = await place_order(sessions, p.buyer.id, p, Side.BUY, "50", quantity=10)
    assert len(bought.deals) == 1
    deal = bought.deals[0]
    assert sell.order.reservation_reference is not None

    original = reservations.find_reservation
    raced: list[str] = []

    async def find_reservation_racing_a_settlement(session: Any, reference: str, **options: Any) -> Any:
        found = await original(session, reference, **options)
        if not raced and reference == sell.order.reservation_reference:
            raced.append(reference)  # the deal's transfer_shares commits right after this first lookup
            async with transaction(sessions) as other:
                await holdings.consume_reservation_and_transfer(
                    other,
                    reference=reference,
                    buyer_id=p.buyer.id,
                    quantity=deal.quantity,
                    price=deal.price,
                    deal_id=deal.deal_id,
                )
        return found

    monkeypatch.setattr(reservations, "find_reservation", find_reservation_racing_a_settlement)
    async with transaction(sessions) as session:
        await marketplace.amend_order(session, sell.order.id, p.seller.id, quantity=30)
    monkeypatch.setattr(reservations, "find_reservation", original)
    assert raced == [sell.order.reservation_reference]

    async with transaction(sessions) as session:
        await marketplace.cancel_order(session, sell.order.id, p.seller.id)
    async with sessions() as session:
        seller_available = await holdings.available_shares(session, p.seller.id, p.security_id)
        buyer_available = await holdings.available_shares(session, p.buyer.id, p.security_id)
        outstanding = (
            await session.execute(
                text(
                    "SELECT coalesce(sum(quantity - released_quantity - consumed_quantity), 0) "
                    "FROM holdings.reservation WHERE owner_id = :o AND security_id = :s"
                ),
                {"o": p.seller.id, "s": p.security_id},
            )
        ).scalar_one()
    assert buyer_available == 10
    assert outstanding == 0, f"{outstanding} shares stay reserved for a cancelled order whose deal already settled"
    assert seller_available == 990


# -- 6. the transfer fee the documents state vs the fee the ledger books ---------------------------------------


async def test_the_signed_transfer_fee_is_the_fee_the_ledger_books(
    api: httpx.AsyncClient, sessions: SessionFactory, token_for: TokenFor, real_activities: DealActivities
) -> None:
    """The agreement states the transfer fee from `_terms` (quantized to the total's 4 places, then printed
    to 2 with half-even), the ledger books `_fee` (half-even straight to cents): double rounding makes them
    differ, e.g. 1 bp of USD 149.50 is printed USD 0.02 and booked USD 0.01."""
    p = await parties(api, sessions, token_for)
    params = await brokered_deal(sessions, p, quantity=1, price="149.50", transfer_fee_bps=1)
    async with transaction(sessions) as session:
        deal = await deals.get_deal(session, params.deal_id)
        terms, _, _ = await real_activities._terms(session, deal, p.buyer.id)
        total = Money(amount=Decimal("149.50"), currency="USD")
        instructions = await payments.create_funding_instructions(
            session, deal_id=deal.id, buyer_id=p.buyer.id, amount=total, reference="fee"
        )
        await payments.record_provider_payment(
            session, event_id=str(uuid.uuid4()), payment_id=instructions.payment_id, status="succeeded", amount=total
        )
        settled = await payments.release_escrow_to_seller(
            session,
            deal_id=deal.id,
            seller_id=deal.seller_id,
            gross=total,
            platform_fee_bps=100,
            company_id=deal.company_id,
            company_fee_bps=1,
        )
        await holdings.release_reservation(session, deal.reservation_reference)  # leave no shares reserved
        assert (await payments.trial_balance(session)).ledger_balanced
    assert rendered_money(terms.transfer_fee) == rendered_money(settled.company_fee), (
        f"documents state {rendered_money(terms.transfer_fee)} ({terms.transfer_fee.amount}), "
        f"ledger books {rendered_money(settled.company_fee)}"
    )
    # The platform's fee comes out of the escrow too: the agreement states it and what the seller receives.
    assert terms.platform_fee == settled.platform_fee
    assert terms.seller_proceeds == settled.seller_net
    agreement = render_text(DocumentKind.STOCK_TRANSFER_AGREEMENT, terms)
    assert f"the platform fee of {rendered_money(settled.platform_fee)}" in agreement
    assert f"the Seller receives {rendered_money(settled.seller_net)}" in agreement


# -- guards: paths checked and found sound -----------------------------------------------------------------------


def _usd(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="USD")


async def _pay(sessions: SessionFactory, deal_id: uuid.UUID, payer: uuid.UUID, due: str, paid: str) -> uuid.UUID:
    async with transaction(sessions) as session:
        instructions = await payments.create_funding_instructions(
            session, deal_id=deal_id, buyer_id=payer, amount=_usd(due), reference="guard"
        )
        await payments.record_provider_payment(
            session,
            event_id=f"evt_{uuid.uuid4().hex}",
            payment_id=instructions.payment_id,
            status="succeeded",
            amount=_usd(paid),
        )
    return instructions.payment_id


async def _cash(sessions: SessionFactory, user_id: uuid.UUID) -> Decimal:
    async with sessions() as session:
        return (await payments.balance(session, payments.user_cash(user_id), "USD")).posted


async def test_two_refunds_of_one_deal_are_both_booked_and_a_retried_refund_books_nothing(
    sessions: SessionFactory,
) -> None:
    """The defaulted buyer's partial payment is refunded when the backup takes over, the backup's payment
    when the deal is then cancelled: two refunds of one escrow, neither dropped as a duplicate key."""
    deal_id, defaulter, backup = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await _pay(sessions, deal_id, defaulter, "500.00", "200.00")
    async with transaction(sessions) as session:
        first = await payments.refund_escrow(session, deal_id=deal_id, reason="buyer defaulted")
    await _pay(sessions, deal_id, backup, "500.00", "500.00")
    for _ in range(2):  # the compensation activity retried after its commit
        async with transaction(sessions) as session:
            await payments.refund_escrow(session, deal_id=deal_id, reason="deal cancelled")
    assert first.refunded == _usd("200.00")
    assert await escrow(sessions, deal_id) == 0
    assert await _cash(sessions, defaulter) == Decimal("200.00")
    assert await _cash(sessions, backup) == Decimal("500.00")
    async with sessions() as session:
        assert (await payments.trial_balance(session)).ledger_balanced


async def test_concurrent_refund_attempts_refund_once(sessions: SessionFactory) -> None:
    """A zombie attempt of the refund activity and its retry run at once: the payment rows' locks
    serialize them, the second finds the escrow empty."""
    deal_id, payer = uuid.uuid4(), uuid.uuid4()
    await _pay(sessions, deal_id, payer, "300.00", "300.00")

    async def refund() -> Decimal:
        async with transaction(sessions) as session:
            return (await payments.refund_escrow(session, deal_id=deal_id, reason="cancelled")).refunded.amount

    results = sorted(await asyncio.gather(refund(), refund(), refund()))
    assert results == [0, 0, Decimal("300.00")]
    assert await escrow(sessions, deal_id) == 0
    assert await _cash(sessions, payer) == Decimal("300.00")


async def test_money_arriving_after_a_refund_or_release_goes_back_and_leaves_escrow_empty(
    sessions: SessionFactory,
) -> None:
    """A late or duplicate provider payment after the deal's terminal money movement is paid back as excess."""
    refunded_deal, released_deal, payer, seller = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    late = await _pay(sessions, refunded_deal, payer, "100.00", "40.00")
    async with transaction(sessions) as session:
        await payments.refund_escrow(session, deal_id=refunded_deal, reason="cancelled")
        update = await payments.record_provider_payment(
            session, event_id=f"evt_{uuid.uuid4().hex}", payment_id=late, status="succeeded", amount=_usd("60.00")
        )
    assert update.applied.amount == 0 and update.refunded_excess == _usd("60.00") and not update.funded
    paid = await _pay(sessions, released_deal, payer, "100.00", "100.00")
    async with transaction(sessions) as session:
        await payments.release_escrow_to_seller(
            session,
            deal_id=released_deal,
            seller_id=seller,
            gross=_usd("100.00"),
            platform_fee_bps=100,
            company_id=None,
            company_fee_bps=0,
        )
        again = await payments.record_provider_payment(
            session, event_id=f"evt_{uuid.uuid4().hex}", payment_id=paid, status="succeeded", amount=_usd("100.00")
        )
    assert again.applied.amount == 0 and again.refunded_excess == _usd("100.00")
    assert await escrow(sessions, refunded_deal) == 0
    assert await escrow(sessions, released_deal) == 0
    assert await _cash(sessions, payer) == Decimal("40.00")
    assert await _cash(sessions, seller) == Decimal("99.00")


# -- 7. overlapping attempts to give a replaced buyer's fill back ---------------------------------------------


@pytest.mark.parametrize("step", ["drop_defaulted_buyer", "give_back_replaced_buyer"])
async def test_overlapping_attempts_give_a_replaced_buyers_fill_back_once(
    step: str, people: Parties, sessions: SessionFactory
) -> None:
    """A zombie attempt of the replace-the-buyer step still holds the security's lock when its retry reads
    the buyer's fills; the retry waits, then must find them given back rather than subtract them again."""
    await place_order(sessions, people.seller.id, people, Side.SELL, "50")
    matched = await place_order(sessions, people.buyer.id, people, Side.BUY, "50")
    deal_id = matched.deals[0].deal_id

    async def give_back(session: Any) -> list[uuid.UUID]:
        if step == "drop_defaulted_buyer":
            return await marketplace.drop_defaulted_buyer(
                session, deal_id=deal_id, buyer_id=people.buyer.id, reason="missed the deadline"
            )
        return await marketplace.give_back_replaced_buyer(session, deal_id=deal_id, buyer_id=people.buyer.id)

    async def retry() -> list[uuid.UUID]:
        async with transaction(sessions) as session:
            return await give_back(session)

    async with transaction(sessions) as zombie:
        await give_back(zombie)
        retried = asyncio.ensure_future(retry())
        await eventually(
            lambda: waiting_for_a_lock(sessions, "%pg_advisory_xact_lock%"), what="the retry to wait for the lock"
        )
    assert await retried == []
    async with sessions() as session:
        bid = await marketplace.get_order(session, matched.order.id)
    assert bid.filled_quantity == 0
    async with sessions() as session:
        assert (await reconciliation_report(session)).fills_consistent


async def test_reconciliation_finds_an_order_whose_fills_disagree_with_its_filled_quantity(
    people: Parties, sessions: SessionFactory
) -> None:
    await place_order(sessions, people.seller.id, people, Side.SELL, "50")
    matched = await place_order(sessions, people.buyer.id, people, Side.BUY, "50", quantity=20)
    async with sessions() as session:  # never committed: the shared database stays sound
        await session.execute(
            text("UPDATE marketplace.fill SET status = 'given_back' WHERE order_id = :o"), {"o": matched.order.id}
        )
        report = await reconciliation_report(session)
        await session.rollback()
    assert not report.fills_consistent
    assert {
        "context": "marketplace",
        "kind": "order-fills",
        "order_id": str(matched.order.id),
        "filled_quantity": 10,
        "active_fills": 0,
    } in report.discrepancies
