"""DealExecution (`deal-{id}`): one secondary trade from match to settlement, durably.

created -> participants_confirmed -> awaiting_issuer (transfer notice signed,
ROFR window on a durable timer, issuer decides) -> documents_generated ->
awaiting_signatures (reminders, deadline) -> awaiting_funding (escrow, deadline,
backup buyer) -> settling (issuer confirms) -> closed; or cancelled from any
stage before settlement is confirmed, with every compensation (Saga): void
signature requests, refund escrow, release reserved shares, reopen orders.

Human and provider actions arrive as Updates with validators (issuer decision,
settlement confirmation, cancel) and Signals (signatures, payments, holds).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.deals import DealActivities
    from models.deals import (
        TERMINAL_STAGES,
        BackupBuyer,
        CancelInput,
        CheckResult,
        DealRef,
        DealStage,
        DealState,
        DealWorkflowInput,
        DocumentsRequest,
        FundingRequest,
        GeneratedDocuments,
        HoldInput,
        IssuerDecision,
        IssuerDecisionInput,
        ParticipantsCheck,
        SettlementConfirmation,
        SettleRequest,
        StageChange,
    )
    from models.documents import DocumentDeclined, DocumentSigned
    from models.payments import PaymentReceived
    from temporal import search_attributes as sa

ACTIVITY_TIMEOUT = timedelta(seconds=20)
"""Short: every deal activity is a few database statements (or one PDF), and a crashed worker's
activity is retried elsewhere only once this much time has passed."""
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
MAX_BACKUP_BUYERS = 3

FUNDED_BY_CURRENT_BUYER = "funded-by-current-buyer"
"""Patch: funding counts only the current buyer's payment (a replaced buyer's late signal no longer does)."""
BACKUP_BUYER_GOES_TO_THE_ISSUER = "backup-buyer-goes-to-the-issuer"
"""Patch: a backup buyer gets a transfer notice of their own and the issuer's decision (and ROFR window) on
them, instead of inheriting the decision made on the buyer who defaulted."""
HOLD_STOPS_THE_DEAL = "hold-stops-deadlines-and-settlement"
"""Patch: a deadline passing while the deal is on hold acts only once the hold is lifted, and a confirmed
settlement moves no money or shares while the deal is on hold."""
REFUSED_STEP_CANCELS = "refused-step-cancels-the-deal"
"""Patch: a step the domain refuses (a non-retryable activity failure) cancels the deal with its compensations,
where it used to fail the workflow (and, before the refusal was non-retryable, retry for ever)."""
SETTLEMENT_WAITS_OUT_BLACKOUTS = "settlement-waits-out-blackouts"
"""Patch: the settlement deadline counts only days outside the company's blackout windows (known when the deal
started), in which the issuer cannot confirm the transfer."""

NOTICE = "stock_transfer_notice"
BUYER_DOCUMENTS = ["stock_transfer_agreement", "issuer_consent", "joinder"]


class DealCancelledError(Exception):
    """Raised inside the workflow to unwind to the compensations."""

    def __init__(self, reason: str, actor: str = "system") -> None:
        super().__init__(reason)
        self.reason = reason
        self.actor = actor


@workflow.defn(name="DealExecution")
class DealExecutionWorkflow:
    @workflow.init
    def __init__(self, params: DealWorkflowInput) -> None:
        self.params = params
        self.stage = DealStage.CREATED
        self.buyer_id = params.buyer_id
        self.on_hold = False
        self.issuer_decision: IssuerDecisionInput | None = None
        self.cancel_request: CancelInput | None = None
        self.settlement_confirmed = False
        self.funded = False
        """Any payment was reported funded: what runs started before FUNDED_BY_CURRENT_BUYER wait for."""
        self.funded_payments: set[uuid.UUID] = set()
        self.payment_id: uuid.UUID | None = None
        """The current buyer's payment (from its funding instructions)."""
        self.signed: set[uuid.UUID] = set()
        self.awaiting: set[uuid.UUID] = set()
        self.declined: DocumentDeclined | None = None
        self.defaulted: list[uuid.UUID] = []
        self.cancel_reason: str | None = None
        self.next_actor: str | None = None
        self.deadline_at: datetime | None = None

    # -- run ------------------------------------------------------------------------

    @workflow.run
    async def run(self, params: DealWorkflowInput) -> DealStage:
        try:
            await self._advance(DealStage.CREATED, "system", "deal created", next_actor="platform")
            await self._confirm_participants()
            await self._issuer_approval()
            await self._documents_and_signatures()
            await self._funding()
            await self._settlement()
        except DealCancelledError as cancelled:
            await self._compensate(cancelled)
        await workflow.wait_condition(workflow.all_handlers_finished)  # answer pending Updates before closing
        return self.stage

    async def _confirm_participants(self) -> None:
        await self._gate()
        result: CheckResult = await self._activity(
            DealActivities.confirm_participants,
            ParticipantsCheck(
                deal_id=self.params.deal_id,
                buyer_id=self.buyer_id,
                seller_id=self.params.seller_id,
                reservation_reference=self.params.reservation_reference,
                quantity=self.params.quantity,
            ),
        )
        if not result.ok:
            raise DealCancelledError("participants not eligible: " + "; ".join(result.reasons))
        await self._advance(
            DealStage.PARTICIPANTS_CONFIRMED, "platform", "buyer, seller and issuer checked", next_actor="platform"
        )

    async def _issuer_approval(self) -> None:
        """The binding transfer notice is signed by both sides, then the issuer's ROFR window runs."""
        await self._gate()
        notice = await self._generate([NOTICE])
        self.awaiting |= set(notice.document_ids)  # listed by the state query from the stage's first moment
        await self._advance(
            DealStage.AWAITING_ISSUER,
            "platform",
            "transfer notice sent to buyer and seller for signature",
            next_actor="buyer and seller: sign the transfer notice",
            deadline_days=self.params.deadlines.signature_days,
        )
        await self._collect_signatures(notice.document_ids)
        policy = self.params.policy
        if self.issuer_decision is None:
            await self._record("issuer", f"transfer notice delivered; ROFR window of {policy.rofr_days} days started")
            self._set_next("issuer: waive, approve, exercise or reject", policy.rofr_days)
            decided = await self._wait(lambda: self.issuer_decision is not None, timedelta(days=policy.rofr_days))
            if not decided:
                if policy.rofr_lapse_is_waiver and not policy.issuer_approval_required:
                    self.issuer_decision = IssuerDecisionInput(
                        decision=IssuerDecision.WAIVE, actor_id=self.params.company_id, reason="ROFR window lapsed"
                    )
                else:
                    raise DealCancelledError("the issuer did not decide within the ROFR window")
        decision = self.issuer_decision
        assert decision is not None
        await self._record(f"issuer:{decision.actor_id}", f"issuer decision: {decision.decision.value}")
        if decision.decision is IssuerDecision.REJECT:
            raise DealCancelledError(f"the issuer rejected the transfer: {decision.reason or 'no reason given'}")
        if decision.decision is IssuerDecision.EXERCISE:
            if not policy.rofr_exercise_substitutes_buyer:
                raise DealCancelledError("the company exercised its right of first refusal")
            replaced = self.buyer_id
            self.buyer_id = self.params.company_id
            await self._record("issuer", f"ROFR exercised: the company replaces buyer {replaced}")
            await self._activity(
                DealActivities.notify_buyer_replaced, DealRef(deal_id=self.params.deal_id, reason=str(replaced))
            )

    async def _documents_and_signatures(self) -> None:
        await self._gate()
        kinds = [k for k in BUYER_DOCUMENTS if not (k == "joinder" and self.buyer_id == self.params.company_id)]
        generated = await self._generate(kinds)
        await self._advance(DealStage.DOCUMENTS_GENERATED, "platform", f"generated {', '.join(kinds)}")
        self.awaiting |= set(generated.document_ids)
        await self._advance(
            DealStage.AWAITING_SIGNATURES,
            "platform",
            "signature requests sent",
            next_actor="buyer and seller: sign the transfer documents",
            deadline_days=self.params.deadlines.signature_days,
        )
        await self._collect_signatures(generated.document_ids)

    async def _funding(self) -> None:
        while True:
            await self._gate()
            payment_id: str = await self._activity(
                DealActivities.create_funding, FundingRequest(deal_id=self.params.deal_id, payer_id=self.buyer_id)
            )
            self.payment_id = uuid.UUID(payment_id)
            by_current_buyer = workflow.patched(FUNDED_BY_CURRENT_BUYER)
            await self._advance(
                DealStage.AWAITING_FUNDING,
                "platform",
                f"funding instructions sent to {self.buyer_id}",
                next_actor="buyer: fund the escrow",
                deadline_days=self.params.deadlines.funding_days,
            )
            funded = self._current_buyer_funded if by_current_buyer else lambda: self.funded
            if await self._wait(funded, timedelta(days=self.params.deadlines.funding_days)):
                await self._record("payments", "escrow funded")
                return
            self.defaulted.append(self.buyer_id)
            await self._record("platform", f"buyer {self.buyer_id} missed the funding deadline")
            if len(self.defaulted) > MAX_BACKUP_BUYERS:
                raise DealCancelledError("no buyer funded the escrow in time")
            backup: BackupBuyer | None = await self._activity(
                DealActivities.find_backup_buyer, DealRef(deal_id=self.params.deal_id, reason=self._defaulted_csv())
            )
            if backup is None:
                raise DealCancelledError("the buyer missed the funding deadline and no backup bid exists")
            self.buyer_id = backup.buyer_id
            self.payment_id = None
            await self._record("platform", f"trade offered to backup buyer {backup.buyer_id} (order {backup.order_id})")
            if workflow.patched(BACKUP_BUYER_GOES_TO_THE_ISSUER):
                self.issuer_decision = None  # the company decides on this buyer afresh
                await self._issuer_approval()
            await self._documents_and_signatures()

    async def _settlement(self) -> None:
        await self._gate()
        days = self.params.deadlines.settlement_days
        if workflow.patched(SETTLEMENT_WAITS_OUT_BLACKOUTS):
            days = self.params.policy.calendar_days_for(days, workflow.now().date())
        await self._advance(
            DealStage.SETTLING,
            "platform",
            "awaiting the issuer's or transfer agent's confirmation",
            next_actor="issuer or transfer agent: confirm the transfer",
            deadline_days=days,
        )
        if not await self._wait(lambda: self.settlement_confirmed, timedelta(days=days)):
            raise DealCancelledError("the transfer was not confirmed in time")
        if self.on_hold and workflow.patched(HOLD_STOPS_THE_DEAL):
            await self._gate()  # held after the confirmation: escrow and shares wait for the hold to be lifted
        request = SettleRequest(deal_id=self.params.deal_id, buyer_id=self.buyer_id)
        await self._activity(DealActivities.release_escrow, request)
        await self._activity(DealActivities.transfer_shares, request)
        await self._activity(DealActivities.complete_orders, request)
        await self._advance(DealStage.CLOSED, "platform", "escrow released, shares transferred", next_actor=None)

    # -- compensation ---------------------------------------------------------------

    async def _compensate(self, cancelled: DealCancelledError) -> None:
        self.cancel_reason = cancelled.reason  # from here on no settlement confirmation is accepted
        ref = DealRef(deal_id=self.params.deal_id, reason=cancelled.reason)
        await self._activity(DealActivities.void_signatures, ref)
        await self._activity(DealActivities.refund_escrow, ref)
        await self._activity(DealActivities.release_shares, ref)
        await self._advance(DealStage.CANCELLED, cancelled.actor, cancelled.reason, next_actor=None)

    # -- waiting --------------------------------------------------------------------

    async def _gate(self) -> None:
        """A compliance hold pauses the deal here until it is lifted (a cancel still gets through)."""
        if self.on_hold:
            await self._record("compliance", "deal on hold; waiting for the hold to be lifted")
            await workflow.wait_condition(lambda: not self.on_hold or self.cancel_request is not None)
        self._raise_if_cancelled()

    async def _wait(self, condition: Callable[[], bool], timeout: timedelta) -> bool:
        """Wait for `condition`; False when `timeout` passes first. A cancel request interrupts."""
        try:
            await workflow.wait_condition(lambda: condition() or self.cancel_request is not None, timeout=timeout)
        except TimeoutError:
            if self.on_hold and workflow.patched(HOLD_STOPS_THE_DEAL):
                # A deadline passing on hold acts once the hold is lifted, and only if still unmet then.
                await self._gate()
                return condition()
            self._raise_if_cancelled()
            return False
        self._raise_if_cancelled()
        return True

    def _raise_if_cancelled(self) -> None:
        if self.cancel_request is not None:
            raise DealCancelledError(self.cancel_request.reason, f"deal_manager:{self.cancel_request.actor_id}")

    async def _collect_signatures(self, document_ids: list[uuid.UUID]) -> None:
        """Wait for the documents (already in `awaiting`) to be signed, sending reminders until the deadline."""
        deadlines = self.params.deadlines
        remaining = timedelta(days=deadlines.signature_days)
        step = timedelta(days=deadlines.reminder_days)
        while True:
            wait_for = min(step, remaining)
            done = await self._wait(lambda: self.declined is not None or set(document_ids) <= self.signed, wait_for)
            if self.declined is not None:
                raise DealCancelledError(f"signature declined by {self.declined.signer_id}: {self.declined.reason}")
            if done:
                self.awaiting -= set(document_ids)
                return
            remaining -= wait_for
            if remaining <= timedelta(0):
                raise DealCancelledError("the signature deadline passed")
            await self._activity(DealActivities.send_reminders, DealRef(deal_id=self.params.deal_id))

    # -- handlers -------------------------------------------------------------------

    @workflow.signal(name="document_signed")
    def document_signed(self, signed: DocumentSigned) -> None:
        if signed.completed:
            self.signed.add(signed.document_id)

    @workflow.signal(name="document_declined")
    def document_declined(self, declined: DocumentDeclined) -> None:
        if declined.document_id in self.awaiting:
            self.declined = declined

    @workflow.signal(name="payment_received")
    def payment_received(self, payment: PaymentReceived) -> None:
        if payment.funded:
            self.funded = True
            self.funded_payments.add(payment.payment_id)

    def _current_buyer_funded(self) -> bool:
        return self.payment_id is not None and self.payment_id in self.funded_payments

    @workflow.signal(name="place_hold")
    def place_hold(self, hold: HoldInput) -> None:
        self.on_hold = True

    @workflow.signal(name="lift_hold")
    def lift_hold(self, hold: HoldInput) -> None:
        self.on_hold = False

    @workflow.update(name="issuer_decision")
    def decide(self, decision: IssuerDecisionInput) -> DealState:
        self.issuer_decision = decision
        return self.state()

    @decide.validator
    def _validate_decision(self, decision: IssuerDecisionInput) -> None:
        if self.stage is not DealStage.AWAITING_ISSUER:
            raise ApplicationError(f"the deal is {self.stage.value}, not awaiting the issuer", type="DealStageConflict")
        if self.issuer_decision is not None:
            raise ApplicationError("the issuer has already decided", type="DealStageConflict")
        if self._cancelling():
            raise ApplicationError("the deal is being cancelled", type="DealStageConflict")

    @workflow.update(name="confirm_settlement")
    async def confirm_settlement(self, confirmation: SettlementConfirmation) -> DealState:
        if self._cancelling():  # a cancel accepted in the same workflow task, before this handler ran
            raise ApplicationError("the deal is being cancelled", type="DealStageConflict")
        self.settlement_confirmed = True
        await workflow.wait_condition(lambda: self.stage in TERMINAL_STAGES)
        return self.state()

    @confirm_settlement.validator
    def _validate_settlement(self, confirmation: SettlementConfirmation) -> None:
        if self.stage is not DealStage.SETTLING or self.settlement_confirmed:
            raise ApplicationError(f"the deal is {self.stage.value}, not awaiting settlement", type="DealStageConflict")
        if self._cancelling():
            raise ApplicationError("the deal is being cancelled", type="DealStageConflict")
        if self.on_hold:
            raise ApplicationError("the deal is on hold until compliance lifts it", type="DealStageConflict")
        blackout = self.params.policy.blackout_on(workflow.now().date())
        if blackout is not None:
            raise ApplicationError(
                f"the company allows no transfers from {blackout.start_date} to {blackout.end_date}",
                {"start_date": blackout.start_date.isoformat(), "end_date": blackout.end_date.isoformat()},
                type="TransferBlackout",
            )

    @workflow.update(name="cancel")
    async def cancel(self, request: CancelInput) -> DealState:
        if self.settlement_confirmed:  # a confirmation accepted in the same workflow task, before this handler ran
            raise ApplicationError(
                "the transfer is confirmed; the deal can no longer be cancelled", type="DealStageConflict"
            )
        self.cancel_request = request
        await workflow.wait_condition(lambda: self.stage in TERMINAL_STAGES)
        return self.state()

    @cancel.validator
    def _validate_cancel(self, request: CancelInput) -> None:
        if self.stage in TERMINAL_STAGES or self.settlement_confirmed:
            raise ApplicationError(
                f"the deal is {self.stage.value} and can no longer be cancelled", type="DealStageConflict"
            )
        if self._cancelling():
            raise ApplicationError("a cancellation is already under way", type="DealStageConflict")

    def _cancelling(self) -> bool:
        """A cancel was requested, or a failure (a deadline, a decline) started the compensations."""
        return self.cancel_request is not None or self.cancel_reason is not None

    @workflow.query(name="state")
    def state(self) -> DealState:
        return DealState(
            deal_id=self.params.deal_id,
            stage=self.stage,
            buyer_id=self.buyer_id,
            on_hold=self.on_hold,
            issuer_decision=self.issuer_decision.decision if self.issuer_decision else None,
            funded=self._current_buyer_funded(),
            signed_documents=sorted(self.signed),
            pending_documents=sorted(self.awaiting - self.signed),
            defaulted_buyers=list(self.defaulted),
            cancel_reason=self.cancel_reason,
            next_actor=self.next_actor,
            deadline=self.deadline_at,
        )

    # -- helpers --------------------------------------------------------------------

    async def _generate(self, kinds: list[str]) -> GeneratedDocuments:
        request = DocumentsRequest(deal_id=self.params.deal_id, kinds=kinds, buyer_id=self.buyer_id)
        generated: GeneratedDocuments = await self._activity(DealActivities.generate_documents, request)
        return generated

    def _set_next(self, actor: str | None, deadline_days: int | None) -> None:
        self.next_actor = actor
        self.deadline_at = workflow.now() + timedelta(days=deadline_days) if deadline_days else None

    async def _advance(
        self,
        stage: DealStage,
        actor: str,
        detail: str,
        *,
        next_actor: str | None = None,
        deadline_days: int | None = None,
    ) -> None:
        self.stage = stage
        self._set_next(next_actor, deadline_days)
        total = self.params.price.amount * self.params.quantity
        if self.params.index_search_attributes:
            self._index(stage, total)
        workflow.upsert_memo(
            {
                "summary": f"{self.params.quantity} shares at {self.params.price.amount} {self.params.price.currency}"
                f" ({total:,.2f} {self.params.price.currency}); {stage.value}: {detail}"
            }
        )
        await self._record(actor, detail)

    def _index(self, stage: DealStage, total: Decimal) -> None:
        """Search attributes for ops in the Web UI (e.g. `DealStage = "awaiting_funding"`)."""
        workflow.upsert_search_attributes(
            [
                sa.DEAL_STAGE.value_set(stage.value),
                sa.COMPANY_ID.value_set(str(self.params.company_id)),
                sa.SECURITY_ID.value_set(str(self.params.security_id)),
                sa.DEAL_VALUE.value_set(float(total)),
                sa.BUYER_ID.value_set(str(self.buyer_id)),
                sa.SELLER_ID.value_set(str(self.params.seller_id)),
            ]
        )

    async def _record(self, actor: str, detail: str) -> None:
        await self._activity(
            DealActivities.record_stage,
            StageChange(
                deal_id=self.params.deal_id,
                event_key=str(workflow.uuid4()),
                stage=self.stage,
                actor=actor,
                detail=detail,
                buyer_id=self.buyer_id,
                on_hold=self.on_hold,
                cancel_reason=self.cancel_reason,
                next_actor=self.next_actor,
                deadline=self.deadline_at,
            ),
        )

    def _defaulted_csv(self) -> str:
        return ",".join(str(b) for b in [*self.defaulted, self.params.seller_id])

    async def _activity(self, method: Any, argument: Any) -> Any:
        try:
            return await workflow.execute_activity_method(
                method, argument, start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=RETRY
            )
        except ActivityError as error:
            refusal = error.cause
            if (
                isinstance(refusal, ApplicationError)
                and refusal.non_retryable
                and self.cancel_reason is None
                and not self.settlement_confirmed
                and workflow.patched(REFUSED_STEP_CANCELS)
            ):
                raise DealCancelledError(f"the deal cannot proceed: {refusal.message}") from None
            raise
