"""Creating a deal and projecting the workflow's stage changes (idempotent, with their events)."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlmodel.ext.asyncio.session import AsyncSession

from events import topics
from events.outbox import record_event
from models.base import Money, utcnow
from models.deals import Deal, DealStage, DealTimelineEntry, DealWorkflowInput, FrozenTransferPolicy, StageChange
from pap.db import insert_unless_conflict
from services.deals.changes import announce
from services.deals.errors import InvalidDeal

SOURCE = "/pap/deals"


MAX_DEAL_VALUE = Decimal(10**13)
"""Quantity x price, as for orders: every amount a deal moves (escrow, fees, refunds) fits the ledger's
16 integer digits; a larger one could never be funded or documented, and its steps would retry for ever."""


async def create_deal(
    session: AsyncSession,
    *,
    deal_id: uuid.UUID | None = None,
    security_id: uuid.UUID,
    company_id: uuid.UUID,
    seller_id: uuid.UUID,
    buyer_id: uuid.UUID,
    quantity: int,
    price: Money,
    source: str,
    policy: FrozenTransferPolicy,
    reservation_reference: str,
    buy_order_id: uuid.UUID | None = None,
    sell_order_id: uuid.UUID | None = None,
    created_by: uuid.UUID | None = None,
) -> Deal:
    """A new deal in stage `created`, with the company's transfer policy frozen into it."""
    if seller_id == buyer_id:
        raise InvalidDeal("The buyer and the seller must be different people.")
    if quantity <= 0 or price.amount <= 0:
        raise InvalidDeal("Quantity and price must be positive.")
    if quantity * price.amount > MAX_DEAL_VALUE:
        raise InvalidDeal(
            f"quantity x price is at most {MAX_DEAL_VALUE:,} {price.currency}.",
            errors=[
                {"pointer": "/quantity", "field": "quantity", "detail": f"quantity x price above {MAX_DEAL_VALUE}"}
            ],
        )
    deal = Deal(
        id=deal_id or uuid.uuid4(),
        security_id=security_id,
        company_id=company_id,
        seller_id=seller_id,
        buyer_id=buyer_id,
        original_buyer_id=buyer_id,
        quantity=quantity,
        price_amount=price.amount,
        currency=price.currency,
        stage=DealStage.CREATED.value,
        source=source,
        buy_order_id=buy_order_id,
        sell_order_id=sell_order_id,
        reservation_reference=reservation_reference,
        policy=policy.model_dump(mode="json"),
        created_by=created_by,
    )
    session.add(deal)
    await session.flush()
    await announce(session, deal.id)
    await record_event(
        session,
        topic=topics.DEALS,
        key=str(deal.id),
        type="deals.created",
        source=SOURCE,
        subject=str(deal.id),
        data=_deal_data(deal),
    )
    return deal


async def record_stage(session: AsyncSession, change: StageChange) -> bool:
    """Project one workflow step; False when this step (its `event_key`) was already recorded."""
    inserted = await insert_unless_conflict(
        session,
        DealTimelineEntry,
        {
            "deal_id": change.deal_id,
            "event_key": change.event_key,
            "stage": change.stage.value,
            "actor": change.actor,
            "detail": change.detail,
            "at": utcnow(),
        },
        constraint="uq_deal_timeline_entry_event_key",
        returning="seq",
    )
    if inserted.first() is None:
        return False
    deal = await session.get(Deal, change.deal_id, with_for_update=True)
    if deal is None:
        raise InvalidDeal(f"deal {change.deal_id} does not exist")
    await announce(session, deal.id)  # a new timeline entry changes the deal's representation, same stage or not
    previous = deal.stage
    deal.stage = change.stage.value
    deal.updated_at = utcnow()
    if change.buyer_id is not None and change.buyer_id != deal.buyer_id:
        if change.buyer_id != deal.company_id:  # the company takes a buyer's place only by its ROFR, not a default
            deal.defaulted_buyer_ids = [*deal.defaulted_buyer_ids, str(deal.buyer_id)]
        deal.buyer_id = change.buyer_id
    if change.on_hold is not None:
        deal.on_hold = change.on_hold
    if change.stage is DealStage.CANCELLED:
        deal.cancel_reason = change.cancel_reason or change.detail
    if change.stage in (DealStage.CLOSED, DealStage.CANCELLED):
        deal.closed_at = deal.closed_at or utcnow()
    data = _deal_data(deal) | {
        "previous_stage": previous,
        "actor": change.actor,
        "detail": change.detail,
        "next_actor": change.next_actor,
        "deadline": change.deadline.isoformat() if change.deadline else None,
    }
    if previous == deal.stage:
        return True
    types = ["deals.stage.changed"]
    if change.stage is DealStage.CLOSED:
        types.append("deals.closed")
    elif change.stage is DealStage.CANCELLED:
        types.append("deals.cancelled")
    for type_ in types:
        await record_event(
            session, topic=topics.DEALS, key=str(deal.id), type=type_, source=SOURCE, subject=str(deal.id), data=data
        )
    return True


def workflow_input(deal: Deal) -> DealWorkflowInput:
    """What DealExecution starts with: the deal's terms and its frozen transfer policy."""
    return DealWorkflowInput(
        deal_id=deal.id,
        security_id=deal.security_id,
        company_id=deal.company_id,
        seller_id=deal.seller_id,
        buyer_id=deal.buyer_id,
        quantity=deal.quantity,
        price=Money(amount=deal.price_amount, currency=deal.currency),
        policy=FrozenTransferPolicy.model_validate(deal.policy),
        reservation_reference=deal.reservation_reference,
        buy_order_id=deal.buy_order_id,
        sell_order_id=deal.sell_order_id,
    )


def _deal_data(deal: Deal) -> dict[str, object]:
    return {
        "deal_id": str(deal.id),
        "stage": deal.stage,
        "security_id": str(deal.security_id),
        "company_id": str(deal.company_id),
        "buyer_id": str(deal.buyer_id),
        "seller_id": str(deal.seller_id),
        "quantity": deal.quantity,
        "price": {"amount": format(deal.price_amount, "f"), "currency": deal.currency},
        "buy_order_id": str(deal.buy_order_id) if deal.buy_order_id else None,
        "sell_order_id": str(deal.sell_order_id) if deal.sell_order_id else None,
    }
