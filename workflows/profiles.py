"""KYC and accreditation workflows: durable waits for a provider, a reviewer, and an expiry date."""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.profiles import ProfilesActivities
    from models.profiles import (
        AccreditationDecisionInput,
        AccreditationExpireInput,
        AccreditationOutcome,
        AccreditationReview,
        AccreditationWorkflowInput,
        KycCheckRequest,
        KycManualDecision,
        KycProviderResult,
        KycStatus,
        KycStatusChange,
        KycWorkflowInput,
    )
    from temporal.search_attributes import KYC_STATUS

_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
_TIMEOUT = timedelta(seconds=30)
_PROVIDER_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(hours=1))
BOUNDED_PROVIDER_REQUEST = "kyc-provider-request-bounded"
"""Versioning: the provider request gives up after the provider's answer window (then manual review);
runs started before it retried the request forever."""


@workflow.defn(name="KycWorkflow")
class KycWorkflow:
    """submit -> provider check -> decision (webhook signal), or manual compliance review after a timeout."""

    @workflow.init
    def __init__(self, params: KycWorkflowInput) -> None:
        self.params = params
        self.status = "pending"
        self.result: KycProviderResult | None = None
        self.decision: KycManualDecision | None = None

    async def _set(
        self, params: KycWorkflowInput, status: KycStatus, reason: str | None = None, reviewer: uuid.UUID | None = None
    ) -> None:
        await workflow.execute_activity_method(
            ProfilesActivities.kyc_set_status,
            KycStatusChange(check_id=params.check_id, status=status, reason=reason, reviewer_id=reviewer),
            start_to_close_timeout=_TIMEOUT,
            retry_policy=_RETRY,
        )
        self.status = status
        self._index()

    def _index(self) -> None:
        if self.params.index_status:
            workflow.upsert_search_attributes([KYC_STATUS.value_set(self.status)])

    @workflow.run
    async def run(self, params: KycWorkflowInput) -> str:
        self._index()
        if await self._request_check(params):
            try:
                await workflow.wait_condition(
                    lambda: self.result is not None, timeout=timedelta(seconds=params.provider_timeout_seconds)
                )
            except TimeoutError:
                await self._set(params, "manual_review", "The KYC provider did not answer in time.")
                await workflow.wait_condition(lambda: self.decision is not None or self.result is not None)
        else:
            await self._set(params, "manual_review", "The KYC provider could not be reached.")
            await workflow.wait_condition(lambda: self.decision is not None or self.result is not None)
        if self.decision is not None:
            final: KycStatus = "approved" if self.decision.decision == "approve" else "rejected"
            await self._set(params, final, self.decision.reason, self.decision.reviewer_id)
        else:
            assert self.result is not None
            await self._set(params, self.result.status, self.result.reason)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status

    async def _request_check(self, params: KycWorkflowInput) -> bool:
        """Ask the provider for a check; False when it stayed unreachable for the whole answer window."""
        request = KycCheckRequest(**params.model_dump(exclude={"provider_timeout_seconds", "index_status"}))
        if not workflow.patched(BOUNDED_PROVIDER_REQUEST):
            await workflow.execute_activity_method(
                ProfilesActivities.kyc_request_check, request, start_to_close_timeout=_TIMEOUT, retry_policy=_RETRY
            )
            return True
        try:
            await workflow.execute_activity_method(
                ProfilesActivities.kyc_request_check,
                request,
                start_to_close_timeout=_TIMEOUT,
                schedule_to_close_timeout=timedelta(seconds=params.provider_timeout_seconds),
                retry_policy=_PROVIDER_RETRY,
            )
        except ActivityError:
            return False
        return True

    @workflow.signal
    def provider_result(self, result: KycProviderResult) -> None:
        """The provider's verdict (from the signed webhook); only the first one counts."""
        if self.result is None and self.decision is None and result.check_id in (None, self.params.check_id):
            self.result = result

    @workflow.update
    async def decide(self, decision: KycManualDecision) -> str:
        self.decision = decision
        await workflow.wait_condition(lambda: self.status in ("approved", "rejected"))
        return self.status

    @decide.validator
    def _validate_decide(self, decision: KycManualDecision) -> None:
        if self.status != "manual_review" or self.decision is not None or self.result is not None:
            raise ValueError(f"KYC is {self.status}: only a check in manual_review can be decided")

    @workflow.query
    def current_status(self) -> str:
        return self.status


@workflow.defn(name="AccreditationWorkflow")
class AccreditationWorkflow:
    """pending_review -> approved (expires after the validity period, a durable timer) or rejected."""

    @workflow.init
    def __init__(self, params: AccreditationWorkflowInput) -> None:
        self.params = params
        self.status = "pending_review"
        self.deciding = False

    @workflow.run
    async def run(self, params: AccreditationWorkflowInput) -> str:
        await workflow.wait_condition(lambda: self.status != "pending_review")
        if self.status == "approved":
            await workflow.sleep(timedelta(seconds=params.validity_seconds))
            await workflow.execute_activity_method(
                ProfilesActivities.accreditation_expire,
                AccreditationExpireInput(accreditation_id=params.accreditation_id),
                start_to_close_timeout=_TIMEOUT,
                retry_policy=_RETRY,
            )
            self.status = "expired"
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status

    @workflow.update
    async def decide(self, review: AccreditationReview) -> AccreditationOutcome:
        self.deciding = True
        now = workflow.now()
        approved = review.decision == "approve"
        expires_at = now + timedelta(seconds=self.params.validity_seconds) if approved else None
        await workflow.execute_activity_method(
            ProfilesActivities.accreditation_record_decision,
            AccreditationDecisionInput(
                accreditation_id=self.params.accreditation_id,
                status="approved" if approved else "rejected",
                reason=review.reason,
                reviewer_id=review.reviewer_id,
                decided_at=now,
                expires_at=expires_at,
            ),
            start_to_close_timeout=_TIMEOUT,
            retry_policy=_RETRY,
        )
        self.status = "approved" if approved else "rejected"
        return AccreditationOutcome(status=self.status, expires_at=expires_at)

    @decide.validator
    def _validate_decide(self, review: AccreditationReview) -> None:
        if self.status != "pending_review" or self.deciding:
            raise ValueError(f"the accreditation is {self.status}, not pending review")

    @workflow.query
    def current_status(self) -> str:
        return self.status
