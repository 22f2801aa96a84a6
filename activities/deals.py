"""Activities of DealExecution: each calls one context's service in its own transaction, idempotently.

A retried or replayed activity finds its earlier effect (by deal id, reference or
event key) and does nothing twice: no second payment, no second transfer.

A domain refusal on the way to settlement (`@refusals_not_retried`) fails its step for good and the
workflow cancels the deal with its compensations; settling and compensating steps keep retrying
instead, so the escrow and shares are never left half moved and ops can repair the cause.
"""

from __future__ import annotations

import uuid
from datetime import date

from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from activities.failures import refusals_not_retried
from events import topics
from events.outbox import record_event_once
from models.base import Money
from models.companies import PLATFORM_FEE_BPS
from models.deals import (
    BackupBuyer,
    CheckResult,
    Deal,
    DealRef,
    DocumentsRequest,
    FrozenTransferPolicy,
    FundingRequest,
    GeneratedDocuments,
    ParticipantsCheck,
    SettleRequest,
    StageChange,
)
from models.documents import DealTerms, DocumentKind, DocumentStatus, Party, SignerSpec
from pap.db import SessionFactory, transaction
from pap.storage import ObjectStore
from services import companies, deals, documents, holdings, marketplace, payments, profiles
from services.admin.audit import record_audit
from services.admin.freeze import is_frozen
from services.identity.users import get_user
from services.marketplace.after_commit import refresh_order_workflows
from services.marketplace.errors import BidNotAvailable

SOURCE = "/pap/deals"


def _total(deal: Deal) -> Money:
    return Money(amount=deal.price_amount * deal.quantity, currency=deal.currency)


class DealActivities:
    def __init__(self, sessions: SessionFactory, store: ObjectStore) -> None:
        self.sessions = sessions
        self.store = store

    @activity.defn(name="deals.record_stage")
    async def record_stage(self, change: StageChange) -> bool:
        async with transaction(self.sessions) as session:
            recorded = await deals.record_stage(session, change)
            if recorded:
                await record_audit(
                    session,
                    actor_id=None,
                    action=f"deal.{change.stage.value}",
                    entity_type="deal",
                    entity_id=str(change.deal_id),
                    data={"actor": change.actor, "detail": change.detail, "event_key": change.event_key},
                )
            return recorded

    @activity.defn(name="deals.confirm_participants")
    @refusals_not_retried
    async def confirm_participants(self, check: ParticipantsCheck) -> CheckResult:
        reasons: list[str] = []
        async with transaction(self.sessions) as session:
            reasons += await _buyer_ineligibility(session, check.buyer_id)
            if await is_frozen(session, check.seller_id):
                reasons.append("seller: the account is frozen by compliance")
            reference = await _seller_reservation(session, check.deal_id, check.reservation_reference)
            try:
                reservation = await holdings.get_reservation(session, reference)
            except holdings.ReservationNotFound:
                reservation = None
            if reservation is None or reservation.outstanding_quantity < check.quantity:
                reasons.append("seller: the shares are not reserved for this deal")
        return CheckResult(ok=not reasons, reasons=reasons)

    @activity.defn(name="deals.generate_documents")
    @refusals_not_retried
    async def generate_documents(self, request: DocumentsRequest) -> GeneratedDocuments:
        """Render and send the requested documents; returns those that wait for signatures."""
        async with transaction(self.sessions) as session:
            deal = await deals.get_deal(session, request.deal_id)
            terms, seller, buyer = await self._terms(session, deal, request.buyer_id)
            awaiting: list[uuid.UUID] = []
            for kind in request.kinds:
                signers = _signers_for(DocumentKind(kind), seller, buyer, deal.company_id)
                document = await documents.generate_document(
                    session, self.store, deal_id=deal.id, kind=DocumentKind(kind), terms=terms, signers=signers
                )
                if signers and document.status != DocumentStatus.SIGNED:
                    awaiting.append(document.id)
            return GeneratedDocuments(document_ids=awaiting)

    async def _terms(
        self, session: AsyncSession, deal: Deal, buyer_id: uuid.UUID
    ) -> tuple[DealTerms, SignerSpec, SignerSpec | None]:
        company = await companies.get_company(session, deal.company_id)
        security = await companies.get_security(session, deal.security_id)
        policy = FrozenTransferPolicy.model_validate(deal.policy)
        seller_user = await get_user(session, deal.seller_id)
        seller = SignerSpec(user_id=seller_user.id, role="seller", name=seller_user.full_name, email=seller_user.email)
        if buyer_id == deal.company_id:
            buyer_party, buyer = Party(id=deal.company_id, name=company.legal_name), None
        else:
            user = await get_user(session, buyer_id)
            buyer_party = Party(id=user.id, name=user.full_name)
            buyer = SignerSpec(user_id=user.id, role="buyer", name=user.full_name, email=user.email, order=2)
        total = _total(deal)
        fee = Money(amount=payments.fee(total.amount, policy.transfer_fee_bps), currency=deal.currency)
        platform_fee = Money(amount=payments.fee(total.amount, PLATFORM_FEE_BPS), currency=deal.currency)
        proceeds = Money(amount=total.amount - fee.amount - platform_fee.amount, currency=deal.currency)
        terms = DealTerms(
            deal_id=deal.id,
            company_id=deal.company_id,
            company_name=company.name,
            company_legal_name=company.legal_name,
            security_class=security.class_name,
            seller=Party(id=seller_user.id, name=seller_user.full_name),
            buyer=buyer_party,
            quantity=deal.quantity,
            price_per_share=Money(amount=deal.price_amount, currency=deal.currency),
            total=total,
            transfer_fee=fee,
            platform_fee=platform_fee,
            seller_proceeds=proceeds,
            rofr_days=policy.rofr_days,
            issuer_approval_required=policy.issuer_approval_required,
            date=deal.created_at.date() if deal.created_at else date.today(),
        )
        return terms, seller, buyer

    @activity.defn(name="deals.send_reminders")
    async def send_reminders(self, ref: DealRef) -> int:
        reminded = 0
        async with transaction(self.sessions) as session:
            for document in await documents.list_deal_documents(session, ref.deal_id):
                if document.status == DocumentStatus.AWAITING_SIGNATURES:
                    reminded += len(await documents.send_reminder(session, document.id))
        return reminded

    @activity.defn(name="deals.void_signatures")
    async def void_signatures(self, ref: DealRef) -> int:
        voided = 0
        async with transaction(self.sessions) as session:
            for document in await documents.list_deal_documents(session, ref.deal_id):
                if document.status in (DocumentStatus.AWAITING_SIGNATURES, DocumentStatus.GENERATED):
                    await documents.void_signature_requests(session, document.id, ref.reason or "deal cancelled")
                    voided += 1
        return voided

    @activity.defn(name="deals.create_funding")
    @refusals_not_retried
    async def create_funding(self, request: FundingRequest) -> str:
        async with transaction(self.sessions) as session:
            deal = await deals.get_deal(session, request.deal_id)
            instructions = await payments.create_funding_instructions(
                session,
                deal_id=deal.id,
                buyer_id=request.payer_id,
                amount=_total(deal),
                reference=f"PAP-{str(deal.id)[:8].upper()}",
            )
            return str(instructions.payment_id)

    @activity.defn(name="deals.find_backup_buyer")
    @refusals_not_retried
    async def find_backup_buyer(self, ref: DealRef) -> BackupBuyer | None:
        """The next best resting bid at the deal's price or better, taken for this deal (idempotent per deal)."""
        excluded = {uuid.UUID(u) for u in ref.reason.split(",") if u}
        reason = "the buyer missed the funding deadline"
        async with transaction(self.sessions) as session:
            deal = await deals.get_deal(session, ref.deal_id)
            defaulter = deal.buyer_id  # the projection moves to the backup only after this step
            candidate = await marketplace.backup_taken(session, deal_id=deal.id, buyer_id=defaulter, defaulted=excluded)
            passed_over = excluded | {deal.seller_id, defaulter}
            while candidate is None:
                bid = await marketplace.best_resting_bid(
                    session,
                    security_id=deal.security_id,
                    min_price=Money(amount=deal.price_amount, currency=deal.currency),
                    quantity=deal.quantity,
                    exclude_user_ids=passed_over,
                )
                if bid is None:
                    break
                if await _buyer_ineligibility(session, bid.user_id):  # KYC, accreditation or a freeze since the bid
                    passed_over.add(bid.user_id)
                    continue
                try:
                    await marketplace.take_backup_bid(
                        session, order_id=bid.order_id, deal_id=deal.id, quantity=deal.quantity
                    )
                except BidNotAvailable:  # cancelled or filled since it was read: on to the next best bid
                    passed_over.add(bid.user_id)
                    continue
                candidate = bid
            if candidate is None:
                return None
            withdrawn = await marketplace.drop_defaulted_buyer(
                session, deal_id=deal.id, buyer_id=defaulter, reason=reason
            )
            await self._void_buyer_documents(session, deal.id)
            await payments.refund_escrow(session, deal_id=deal.id, reason=reason)
        # The backup bid changed too (filled, or its remainder below the minimum transfer cancelled).
        await refresh_order_workflows(activity.client(), [*withdrawn, candidate.order_id])
        return BackupBuyer(buyer_id=candidate.user_id, order_id=candidate.order_id)

    async def _void_buyer_documents(self, session: AsyncSession, deal_id: uuid.UUID) -> None:
        """Every document naming the buyer who defaulted, the transfer notice included: the backup buyer
        gets a notice of their own, which the issuer decides on."""
        for document in await documents.list_deal_documents(session, deal_id):
            if document.status != DocumentStatus.VOIDED:
                await documents.void_signature_requests(session, document.id, "replaced for a backup buyer")

    @activity.defn(name="deals.release_escrow")
    async def release_escrow(self, request: SettleRequest) -> str:
        async with transaction(self.sessions) as session:
            deal = await deals.get_deal(session, request.deal_id)
            policy = FrozenTransferPolicy.model_validate(deal.policy)
            result = await payments.release_escrow_to_seller(
                session,
                deal_id=deal.id,
                seller_id=deal.seller_id,
                gross=_total(deal),
                platform_fee_bps=PLATFORM_FEE_BPS,
                company_id=deal.company_id,
                company_fee_bps=policy.transfer_fee_bps,
            )
            return str(result.entry_id)

    @activity.defn(name="deals.transfer_shares")
    async def transfer_shares(self, request: SettleRequest) -> str:
        async with transaction(self.sessions) as session:
            deal = await deals.get_deal(session, request.deal_id)
            transfer = await holdings.consume_reservation_and_transfer(
                session,
                reference=await _seller_reservation(session, deal.id, deal.reservation_reference),
                buyer_id=request.buyer_id,
                quantity=deal.quantity,
                price=Money(amount=deal.price_amount, currency=deal.currency),
                deal_id=deal.id,
            )
            return str(transfer.id)

    @activity.defn(name="deals.complete_orders")
    async def complete_orders(self, request: SettleRequest) -> None:
        async with transaction(self.sessions) as session:
            deal = await deals.get_deal(session, request.deal_id)
            if deal.source == "matched":
                await marketplace.on_deal_closed(session, deal_id=deal.id)

    @activity.defn(name="deals.refund_escrow")
    async def refund_escrow(self, ref: DealRef) -> str:
        async with transaction(self.sessions) as session:
            result = await payments.refund_escrow(session, deal_id=ref.deal_id, reason=ref.reason)
            return format(result.refunded.amount, "f")

    @activity.defn(name="deals.release_shares")
    async def release_shares(self, ref: DealRef) -> None:
        """A brokered deal's own reservation is released; a matched deal's shares go back to its sell order;
        every fill the deal took (its orders', or a backup buyer's bid) is given back."""
        async with transaction(self.sessions) as session:
            deal = await deals.get_deal(session, ref.deal_id)
            if deal.source != "matched":
                await holdings.release_reservation(session, deal.reservation_reference)
            changed = await marketplace.on_deal_cancelled(session, deal_id=deal.id, reason=ref.reason)
        await refresh_order_workflows(activity.client(), changed)

    @activity.defn(name="deals.notify_buyer_replaced")
    @refusals_not_retried
    async def notify_buyer_replaced(self, ref: DealRef) -> None:
        """The company took the buyer (`ref.reason`) 's place: the buyer's bid gets its fill back; they are told."""
        async with transaction(self.sessions) as session:
            deal = await deals.get_deal(session, ref.deal_id)
            live = await marketplace.give_back_replaced_buyer(session, deal_id=deal.id, buyer_id=uuid.UUID(ref.reason))
            await record_event_once(  # a retry of this step announces nothing twice
                session,
                event_id=uuid.uuid5(deal.id, f"buyer-replaced:{ref.reason}"),
                topic=topics.DEALS,
                key=str(deal.id),
                type="deals.buyer.replaced",
                source=SOURCE,
                subject=str(deal.id),
                data={
                    "deal_id": str(deal.id),
                    "replaced_buyer_id": ref.reason,
                    "buyer_id": str(deal.company_id),
                    "seller_id": str(deal.seller_id),
                    "quantity": deal.quantity,
                    "price": {"amount": str(deal.price_amount), "currency": deal.currency},
                },
            )
        await refresh_order_workflows(activity.client(), live)


async def _buyer_ineligibility(session: AsyncSession, buyer_id: uuid.UUID) -> list[str]:
    """Why `buyer_id` may not buy now (approved KYC, unexpired accreditation, no freeze); empty when they may."""
    eligibility = await profiles.buyer_eligibility(session, buyer_id)
    reasons = [] if eligibility.eligible else [f"buyer: {r}" for r in eligibility.reasons] or ["buyer is not eligible"]
    if await is_frozen(session, buyer_id):
        reasons.append("buyer: the account is frozen by compliance")
    return reasons


async def _seller_reservation(session: AsyncSession, deal_id: uuid.UUID, recorded: str) -> str:
    """Where the seller's shares are reserved now: a sell order's reservation moves when the order is amended."""
    orders = await marketplace.order_for_deal(session, deal_id)
    return orders.seller_reservation_reference if orders and orders.seller_reservation_reference else recorded


def _signers_for(
    kind: DocumentKind, seller: SignerSpec, buyer: SignerSpec | None, company_id: uuid.UUID
) -> list[SignerSpec]:
    """Who signs what: both sides sign the notice and the agreement (seller first); the buyer the joinder."""
    if kind is DocumentKind.STOCK_TRANSFER_NOTICE:
        both = [seller.model_copy(update={"order": 1})]
        return both + ([buyer.model_copy(update={"order": 1})] if buyer else [])
    if kind is DocumentKind.STOCK_TRANSFER_AGREEMENT:
        return [seller.model_copy(update={"order": 1})] + ([buyer.model_copy(update={"order": 2})] if buyer else [])
    if kind is DocumentKind.JOINDER:
        return [buyer.model_copy(update={"order": 1})] if buyer else []
    return []  # the issuer consent records the issuer's decision; it needs no signature of ours
