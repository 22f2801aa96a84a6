"""Deals: brokered deal creation, reading a deal and its timeline, and the human steps of DealExecution.

Every step that changes a running deal is a workflow Update, so the caller gets
the workflow's answer (or a 409 problem when the deal is not at that stage).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Query, Request, Response, status
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api import etags, prefer
from api.auth import CurrentUser, MfaRequired, require
from api.deps import DealChangesDep, SessionDep, SessionsDep, SettingsDep, TemporalDep
from models.base import Money, utcnow
from models.deals import (
    CancelInput,
    CancelRequest,
    Deal,
    DealCreate,
    DealRead,
    DealStage,
    DealState,
    FrozenTransferPolicy,
    IssuerDecisionInput,
    IssuerDecisionRequest,
    ParticipantRead,
    SettlementConfirmation,
    TimelineRead,
)
from models.payments import FundingInstructions
from pap.db import transaction
from services import admin, companies, deals, documents, holdings, payments, profiles
from services.deals.errors import DealStageConflict, InvalidDeal
from services.errors import Forbidden, NotFound
from services.identity.permissions import Permission, Role
from services.identity.tokens import Principal
from services.identity.users import get_user
from services.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor
from temporal.ids import deal_workflow_id
from temporal.starters import start_deal

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/v1/deals", tags=["deals"])

DealManager = Annotated[Principal, Depends(require(Permission.DEALS_MANAGE))]


class BuyerNotEligible(InvalidDeal):
    type = "buyer-not-eligible"
    title = "The buyer may not buy yet"


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_brokered_deal(
    body: DealCreate, principal: DealManager, sessions: SessionsDep, temporal: TemporalDep, settings: SettingsDep
) -> DealRead:
    """A deal arranged by a deal manager: the seller's shares are reserved now, the workflow does the rest."""
    deal_id = uuid.uuid4()
    reference = f"deal:{deal_id}"
    deals.ensure_not_a_party(principal, body.buyer_id, body.seller_id)
    async with transaction(sessions) as session:
        for role, user_id in (("seller_id", body.seller_id), ("buyer_id", body.buyer_id)):
            try:
                await get_user(session, user_id)
            except NotFound:
                raise InvalidDeal(f"No user {user_id}.", errors=[{"field": role, "detail": "unknown user"}]) from None
        await admin.ensure_not_frozen(session, body.seller_id, body.buyer_id)
        security = await companies.get_security(session, body.security_id)
        await companies.check_transfer_allowed(session, body.security_id, body.quantity, utcnow().date())
        eligibility = await profiles.buyer_eligibility(session, body.buyer_id)
        if not eligibility.eligible:
            raise BuyerNotEligible("; ".join(eligibility.reasons) or "The buyer is not eligible.")
        policy = await companies.transfer_policy_for_security(session, body.security_id)
        frozen = FrozenTransferPolicy.model_validate(policy.model_dump(), from_attributes=True)
        await holdings.reserve_shares(
            session, owner_id=body.seller_id, security_id=body.security_id, quantity=body.quantity, reference=reference
        )
        deal = await deals.create_deal(
            session,
            deal_id=deal_id,
            security_id=security.id,
            company_id=security.company_id,
            seller_id=body.seller_id,
            buyer_id=body.buyer_id,
            quantity=body.quantity,
            price=body.price,
            source="brokered",
            policy=frozen,
            reservation_reference=reference,
            created_by=principal.user_id,
        )
    try:
        await start_deal(temporal, deals.workflow_input(deal), settings.task_queue)
    except Exception:  # the deal is saved: a retry must not create it twice; the deals.created backstop starts it
        log.warning("deal created; its workflow is left to the backstop", deal_id=str(deal.id), exc_info=True)
    async with sessions() as session:
        return await deal_read(session, deal, principal)


@router.get("")
async def list_deals(
    principal: CurrentUser,
    session: SessionDep,
    stage: DealStage | None = None,
    order_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> dict[str, Any]:
    after = decode_cursor(cursor) if cursor else None
    rows = await deals.list_deals(
        session, principal, stage=stage.value if stage else None, order_id=order_id, limit=limit + 1, after=after
    )
    page, more = rows[:limit], len(rows) > limit
    return {
        "items": [(await deal_read(session, deal, principal, full=False)).model_dump(mode="json") for deal in page],
        "next_cursor": encode_cursor(page[-1].created_at, page[-1].id) if more else None,
    }


@router.get(
    "/{deal_id}",
    response_model=DealRead,
    responses={304: {"description": "The deal still has the `If-None-Match` ETag (after the `Prefer: wait`)."}},
)
async def get_deal(
    deal_id: uuid.UUID, request: Request, principal: CurrentUser, sessions: SessionsDep, changes: DealChangesDep
) -> Response:
    """The deal, with an ETag. `If-None-Match` answers 304 while it is unchanged; adding `Prefer: wait=N`
    (N <= 30) holds the request until the deal changes or N seconds pass, so clients long-poll instead of polling.
    """
    tags = etags.none_match_tags(request.headers.getlist("if-none-match"))
    wait = prefer.wait_seconds(request.headers.getlist("prefer")) if tags else None

    async def current() -> tuple[bytes, str]:
        async with sessions() as session:  # a session per read: none is held while the request waits
            read = await deal_read(session, await deals.deal_for_viewer(session, deal_id, principal), principal)
        body = read.model_dump_json().encode()
        return body, etags.etag_of(body)

    if wait is None:
        return etags.conditional_response(*await current(), tags)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    with changes.watch(deal_id) as watch:
        body, etag = await current()  # a non-participant's 404 comes from here, before any waiting
        while etags.matches(tags, etag) and (remaining := deadline - loop.time()) > 0:
            await watch.wait(remaining)
            body, etag = await current()
    return etags.conditional_response(body, etag, tags, {"Preference-Applied": f"wait={wait}"})


@router.get("/{deal_id}/state")
async def get_live_state(
    deal_id: uuid.UUID, principal: CurrentUser, session: SessionDep, temporal: TemporalDep
) -> DealState:
    """The workflow's own view (a Query): who acts next, deadlines, pending documents."""
    await deals.deal_for_viewer(session, deal_id, principal)
    state: DealState = await temporal.get_workflow_handle(deal_workflow_id(deal_id)).query(
        "state", result_type=DealState
    )
    return state


@router.get("/{deal_id}/documents")
async def deal_documents(deal_id: uuid.UUID, principal: CurrentUser, session: SessionDep) -> list[dict[str, Any]]:
    await deals.deal_for_viewer(session, deal_id, principal)
    return [d.model_dump(mode="json") for d in await documents.list_deal_documents(session, deal_id, principal)]


@router.post("/{deal_id}/issuer-decision")
async def issuer_decision(
    deal_id: uuid.UUID, body: IssuerDecisionRequest, principal: CurrentUser, session: SessionDep, temporal: TemporalDep
) -> DealState:
    _mfa_first(principal)
    deal = await deals.deal_for_viewer(session, deal_id, principal)
    _require_issuer_or_manager(principal, deal)
    decision = IssuerDecisionInput(decision=body.decision, reason=body.reason, actor_id=principal.user_id)
    return await update_deal_workflow(temporal, deal_id, "issuer_decision", decision)


@router.post("/{deal_id}/funding")
async def funding_instructions(deal_id: uuid.UUID, principal: CurrentUser, session: SessionDep) -> FundingInstructions:
    """The buyer's payment instructions: those the workflow created for the current buyer (it alone opens a
    payment, so a buyer the deal has moved past can never be given wire details for it)."""
    deal = await deals.deal_for_viewer(session, deal_id, principal)
    company_buys = deal.buyer_id == deal.company_id and principal.has_role(Role.ISSUER)
    if principal.user_id != deal.buyer_id and not (company_buys and principal.company_id == deal.company_id):
        raise Forbidden("Only the deal's buyer funds it (the company's issuer, when it exercised its ROFR).")
    if deal.stage != DealStage.AWAITING_FUNDING.value:
        raise DealStageConflict(f"The deal is {deal.stage}, not awaiting funding.")
    instructions = await payments.open_funding(session, deal_id=deal.id, payer_id=deal.buyer_id)
    if instructions is None:  # e.g. a backup buyer, until the issuer has decided on them
        raise DealStageConflict("The deal is not ready for this buyer's funding yet.")
    return instructions


@router.post("/{deal_id}/settlement/confirm")
async def confirm_settlement(
    deal_id: uuid.UUID, principal: CurrentUser, session: SessionDep, temporal: TemporalDep
) -> DealState:
    _mfa_first(principal)
    deal = await deals.deal_for_viewer(session, deal_id, principal)
    _require_issuer_or_manager(principal, deal)
    return await update_deal_workflow(
        temporal, deal_id, "confirm_settlement", SettlementConfirmation(actor_id=principal.user_id)
    )


@router.post("/{deal_id}/cancel")
async def cancel_deal(
    deal_id: uuid.UUID, body: CancelRequest, principal: DealManager, session: SessionDep, temporal: TemporalDep
) -> DealState:
    deal = await deals.deal_for_viewer(session, deal_id, principal)
    deals.ensure_not_a_party(principal, deal.buyer_id, deal.seller_id)
    return await update_deal_workflow(
        temporal, deal_id, "cancel", CancelInput(reason=body.reason, actor_id=principal.user_id)
    )


def _mfa_first(principal: Principal) -> None:
    """A deal manager without MFA hears `mfa-required` (the contract), not the 404 of a deal they cannot see yet."""
    if principal.has_role(Role.DEAL_MANAGER) and not principal.mfa and not principal.has_role(Role.ISSUER):
        raise MfaRequired("Enrol and use MFA before using privileged endpoints.")


def _require_issuer_or_manager(principal: Principal, deal: Deal) -> None:
    """The company's issuer, or a deal manager (who must have used MFA); neither may be a party to the deal."""
    deals.ensure_not_a_party(principal, deal.buyer_id, deal.seller_id)
    if principal.has_role(Role.ISSUER) and principal.company_id == deal.company_id:
        return
    if principal.has_role(Role.DEAL_MANAGER):
        if not principal.mfa:
            raise MfaRequired("Enrol and use MFA before using privileged endpoints.")
        return
    raise Forbidden("Only the company's issuer or a deal manager may do this.")


async def update_deal_workflow(client: Client, deal_id: uuid.UUID, name: str, argument: object) -> DealState:
    """Send an Update to the deal's workflow; its validator's refusals become 409 problems."""
    handle = client.get_workflow_handle(deal_workflow_id(deal_id))
    try:
        state: DealState = await handle.execute_update(name, argument, result_type=DealState)
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        if isinstance(cause, ApplicationError) and cause.type == "DealStageConflict":
            raise DealStageConflict(cause.message) from None
        if isinstance(cause, ApplicationError) and cause.type == "TransferBlackout":
            window = cause.details[0] if cause.details else {}
            raise DealStageConflict(f"The company {cause.message}; confirm the transfer after it.", **window) from None
        raise
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise DealStageConflict("The deal's workflow has finished.") from None
        raise
    return state


async def deal_read(session: Any, deal: Deal, viewer: Principal, *, full: bool = True) -> DealRead:
    """The deal as `viewer` may see it: payments are their own unless they oversee the deal."""
    participants = [
        ParticipantRead(user_id=deal.seller_id, role="seller"),
        ParticipantRead(user_id=deal.buyer_id, role="buyer"),
        ParticipantRead(user_id=deal.company_id, role="issuer"),
    ]
    participants += [ParticipantRead(user_id=uuid.UUID(b), role="defaulted_buyer") for b in deal.defaulted_buyer_ids]
    price = Money(amount=deal.price_amount, currency=deal.currency)
    read = DealRead(
        id=deal.id,
        workflow_id=deal_workflow_id(deal.id),
        stage=DealStage(deal.stage),
        security_id=deal.security_id,
        company_id=deal.company_id,
        quantity=deal.quantity,
        price=price,
        total=Money(amount=price.amount * deal.quantity, currency=deal.currency),
        buyer_id=deal.buyer_id,
        seller_id=deal.seller_id,
        original_buyer_id=deal.original_buyer_id,
        source=deal.source,
        buy_order_id=deal.buy_order_id,
        sell_order_id=deal.sell_order_id,
        on_hold=deal.on_hold,
        cancel_reason=deal.cancel_reason,
        participants=participants,
        created_at=deal.created_at,
        closed_at=deal.closed_at,
    )
    if full:
        read.documents = [
            d.model_dump(mode="json") for d in await documents.list_deal_documents(session, deal.id, viewer)
        ]
        every = deals.sees_every_payment(deal, viewer)
        read.payments = [
            p.model_dump(mode="json")
            for p in await payments.deal_payments(session, deal.id)
            if every or p.payer_id == viewer.user_id
        ]
        read.timeline = [
            TimelineRead(stage=e.stage, at=e.at, actor=e.actor, detail=e.detail)
            for e in await deals.timeline(session, deal.id)
        ]
    return read
