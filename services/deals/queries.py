"""Reading deals, with the rule of who may see one."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import and_, col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.deals import Deal, DealTimelineEntry
from services.deals.changes import announce
from services.deals.errors import PartyToTheDeal
from services.errors import NotFound
from services.identity.permissions import Permission, Role, permissions_of
from services.identity.tokens import Principal


async def get_deal(session: AsyncSession, deal_id: uuid.UUID) -> Deal:
    deal = await session.get(Deal, deal_id)
    if deal is None:
        raise NotFound(f"deal {deal_id} does not exist")
    return deal


def reads_all_deals(principal: Principal) -> bool:
    """Deal managers and compliance, once their MFA is enrolled (until then they see only their own deals)."""
    return Permission.DEALS_READ_ALL in permissions_of(set(principal.roles)) and principal.mfa


def can_view(deal: Deal, principal: Principal) -> bool:
    """The current buyer and seller, the company's issuer, deal managers and compliance see a deal.

    A buyer who was replaced (defaulted, or the issuer exercised its right of first refusal) is no
    longer a participant: the deal now carries someone else's identity and payments.
    """
    if reads_all_deals(principal) or principal.user_id in (deal.buyer_id, deal.seller_id):
        return True
    return principal.has_role(Role.ISSUER) and principal.company_id == deal.company_id


def sees_every_payment(deal: Deal, principal: Principal) -> bool:
    """Deal managers, compliance and the company's issuer see every payment of a deal; a buyer or seller
    only those they made (not a defaulted buyer's, nor the buyer's when selling)."""
    return reads_all_deals(principal) or (principal.has_role(Role.ISSUER) and principal.company_id == deal.company_id)


def ensure_not_a_party(principal: Principal, buyer_id: uuid.UUID, seller_id: uuid.UUID) -> None:
    """Whoever decides for the issuer, confirms, cancels or holds a deal must not be buying or selling in it."""
    if principal.user_id in (buyer_id, seller_id):
        raise PartyToTheDeal("You are the buyer or seller in this deal; someone else must act on it.")


async def deal_for_viewer(session: AsyncSession, deal_id: uuid.UUID, principal: Principal) -> Deal:
    """The deal, or NotFound when it does not exist or the caller may not know it exists."""
    deal = await session.get(Deal, deal_id)
    if deal is None or not can_view(deal, principal):
        raise NotFound(f"deal {deal_id} does not exist")
    return deal


async def list_deals(
    session: AsyncSession,
    principal: Principal,
    *,
    stage: str | None = None,
    order_id: uuid.UUID | None = None,
    limit: int = 50,
    after: tuple[datetime, uuid.UUID] | None = None,
) -> list[Deal]:
    """Deals visible to the caller, newest first."""
    query = select(Deal).order_by(col(Deal.created_at).desc(), col(Deal.id).desc()).limit(limit)
    if not reads_all_deals(principal):
        visible = [col(Deal.buyer_id) == principal.user_id, col(Deal.seller_id) == principal.user_id]
        if principal.has_role(Role.ISSUER) and principal.company_id:
            visible.append(col(Deal.company_id) == principal.company_id)
        query = query.where(or_(*visible))
    if stage:
        query = query.where(col(Deal.stage) == stage)
    if order_id:
        query = query.where(or_(col(Deal.buy_order_id) == order_id, col(Deal.sell_order_id) == order_id))
    if after:
        created_at, deal_id = after
        query = query.where(
            or_(col(Deal.created_at) < created_at, and_(col(Deal.created_at) == created_at, col(Deal.id) < deal_id))
        )
    return list((await session.exec(query)).all())


async def timeline(session: AsyncSession, deal_id: uuid.UUID) -> list[DealTimelineEntry]:
    rows = await session.exec(
        select(DealTimelineEntry).where(col(DealTimelineEntry.deal_id) == deal_id).order_by(col(DealTimelineEntry.seq))
    )
    return list(rows.all())


async def deals_created_between(
    session: AsyncSession, start: datetime | None, end: datetime | None, *, limit: int = 10_000
) -> list[Deal]:
    """Deals created in [start, end), oldest first (compliance exports)."""
    query = select(Deal).order_by(col(Deal.created_at), col(Deal.id)).limit(limit)
    if start is not None:
        query = query.where(col(Deal.created_at) >= start)
    if end is not None:
        query = query.where(col(Deal.created_at) < end)
    return list((await session.exec(query)).all())


async def open_deals(session: AsyncSession, *, limit: int = 1_000) -> list[Deal]:
    """Deals not yet closed or cancelled, the longest unchanged first (ops: stuck deals)."""
    query = (
        select(Deal).where(col(Deal.stage).not_in(["closed", "cancelled"])).order_by(col(Deal.updated_at)).limit(limit)
    )
    return list((await session.exec(query)).all())


async def open_deals_of(session: AsyncSession, user_id: uuid.UUID) -> list[Deal]:
    """The deals not yet closed or cancelled in which `user_id` is the buyer or the seller."""
    query = select(Deal).where(
        col(Deal.stage).not_in(["closed", "cancelled"]),
        or_(col(Deal.buyer_id) == user_id, col(Deal.seller_id) == user_id),
    )
    return list((await session.exec(query)).all())


async def set_on_hold(session: AsyncSession, deal_id: uuid.UUID, on_hold: bool) -> Deal:
    """Mirror a compliance hold in the projection at once (the workflow records it again at its next step)."""
    deal = await session.get(Deal, deal_id, with_for_update=True)
    if deal is None:
        raise NotFound(f"deal {deal_id} does not exist")
    deal.on_hold = on_hold
    session.add(deal)
    await session.flush()
    await announce(session, deal.id)
    return deal
