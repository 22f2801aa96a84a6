"""`/v1/profiles/*` and `/v1/compliance/*`: profiles, KYC (workflow + provider webhook), accreditation reviews."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, status
from pydantic import ValidationError
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from api.auth import CurrentUser, require
from api.deps import SessionDep, SessionsDep, SettingsDep, TemporalDep
from api.problems import validation_errors
from models.profiles import (
    AccreditationRead,
    AccreditationReview,
    AccreditationSubmit,
    AccreditationWorkflowInput,
    KycCheck,
    KycManualDecision,
    KycProviderResult,
    KycRead,
    KycSubmit,
    KycWebhook,
    KycWorkflowInput,
    ProfileRead,
    ProfileUpdate,
    ReviewDecision,
)
from pap.db import transaction
from pap.settings import Settings
from services import profiles
from services.errors import InvalidInput, Unauthenticated
from services.identity.permissions import Permission, Role
from services.identity.tokens import Principal
from services.profiles.accreditation import (
    AccreditationNotPending,
    AccreditationPending,
    accreditation_workflow_id,
    to_read,
)
from services.profiles.kyc import KycInProgress, KycNotInReview, OwnKyc
from services.profiles.kyc_provider import SIGNATURE_HEADER, signature_valid
from workflows.profiles import AccreditationWorkflow, KycWorkflow

router = APIRouter(tags=["profiles"])

Reviewer = Annotated[Principal, Depends(require(Permission.COMPLIANCE_REVIEW))]


class InvalidSignature(Unauthenticated):
    type = "invalid-signature"
    title = "The webhook signature is not valid"


@router.get("/v1/profiles/me")
async def get_my_profile(principal: CurrentUser, session: SessionDep) -> ProfileRead:
    return await profiles.get_profile(session, principal.user_id)


@router.put("/v1/profiles/me")
async def put_my_profile(body: ProfileUpdate, principal: CurrentUser, session: SessionDep) -> ProfileRead:
    return await profiles.put_profile(session, principal.user_id, body)


@router.post("/v1/profiles/me/kyc", status_code=status.HTTP_202_ACCEPTED)
async def submit_kyc(
    body: KycSubmit, principal: CurrentUser, sessions: SessionsDep, temporal: TemporalDep, settings: SettingsDep
) -> KycRead:
    """Starts `kyc-{user_id}`: the provider checks, then answers through the signed webhook.

    A resubmission while a check is pending is refused (409), after making sure that check's workflow
    runs: a start lost after commit (Temporal away) would otherwise leave it pending for good.
    """
    try:
        async with transaction(sessions) as session:
            check = await profiles.submit_kyc(session, principal.user_id, body)
    except KycInProgress:
        async with sessions() as session:
            pending = await profiles.latest_kyc(session, principal.user_id)
        if pending is not None and pending.status == "pending":
            await _start_kyc(temporal, settings, pending)
        raise
    workflow_id = await _start_kyc(temporal, settings, check)
    return KycRead(status=check.status, check_id=check.id, workflow_id=workflow_id)


async def _start_kyc(temporal: Client, settings: Settings, check: KycCheck) -> str:
    """The check's `kyc-{user_id}` workflow; a running one is kept."""
    workflow_id = profiles.kyc_workflow_id(check.user_id)
    submitted = KycSubmit.model_validate(check, from_attributes=True)
    await temporal.start_workflow(
        KycWorkflow.run,
        KycWorkflowInput(user_id=check.user_id, check_id=check.id, **submitted.model_dump()),
        id=workflow_id,
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    return workflow_id


@router.get("/v1/profiles/me/kyc")
async def get_my_kyc(principal: CurrentUser, session: SessionDep) -> KycRead:
    check = await profiles.latest_kyc(session, principal.user_id)
    if check is None:
        return KycRead(status="not_started")
    return KycRead(
        status=check.status,
        check_id=check.id,
        workflow_id=profiles.kyc_workflow_id(principal.user_id),
        reason=check.reason,
        decided_at=check.decided_at,
    )


@router.post("/v1/profiles/kyc/webhook")
async def kyc_webhook(
    request: Request, sessions: SessionsDep, temporal: TemporalDep, settings: SettingsDep
) -> dict[str, Any]:
    """Provider callback, HMAC-SHA256 signed (`X-Signature`); a replayed event id is acknowledged and ignored."""
    raw = await request.body()
    if not signature_valid(raw, request.headers.get(SIGNATURE_HEADER), settings.kyc_webhook_secret.get_secret_value()):
        raise InvalidSignature("The X-Signature header does not match the body.")
    try:
        event = KycWebhook.model_validate_json(raw)
    except ValidationError as error:
        raise InvalidInput(
            "The webhook body is not valid.",
            errors=[{**e, "pointer": "/body" + e["pointer"]} for e in validation_errors(list(error.errors()))],
        ) from error
    async with transaction(sessions) as session:
        check = await profiles.claim_webhook(session, event)
        if check is None:
            return {"status": "duplicate", "event_id": event.event_id}
        # Signalled inside the transaction: if Temporal is down the receipt rolls back and the provider retries.
        try:
            await temporal.get_workflow_handle(profiles.kyc_workflow_id(check.user_id)).signal(
                KycWorkflow.provider_result,
                KycProviderResult(
                    check_id=check.id, status=event.status, reason=event.reason, provider_ref=event.reference
                ),
            )
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            # The check was already decided (a late or second verdict): acknowledged, so the provider stops.
            return {"status": "ignored", "event_id": event.event_id}
    return {"status": "accepted", "event_id": event.event_id}


@router.post("/v1/profiles/me/accreditation", status_code=status.HTTP_202_ACCEPTED)
async def submit_accreditation(
    body: AccreditationSubmit,
    principal: CurrentUser,
    sessions: SessionsDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> AccreditationRead:
    try:
        async with transaction(sessions) as session:
            row = await profiles.submit_accreditation(session, principal.user_id, body)
    except AccreditationPending as pending:  # make sure the pending one is being reviewed (see submit_kyc)
        await _start_accreditation(
            temporal, settings, uuid.UUID(str(pending.extra["accreditation_id"])), principal.user_id
        )
        raise
    await _start_accreditation(temporal, settings, row.id, row.user_id)
    return to_read(row)


async def _start_accreditation(
    temporal: Client, settings: Settings, accreditation_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    await temporal.start_workflow(
        AccreditationWorkflow.run,
        AccreditationWorkflowInput(accreditation_id=accreditation_id, user_id=user_id),
        id=accreditation_workflow_id(accreditation_id),
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )


@router.get("/v1/profiles/me/accreditations")
async def list_my_accreditations(principal: CurrentUser, session: SessionDep) -> dict[str, Any]:
    rows = await profiles.list_accreditations(session, principal.user_id)
    return {"items": [to_read(r).model_dump(mode="json") for r in rows], "next_cursor": None}


@router.get("/v1/profiles/accreditations/{accreditation_id}")
async def get_accreditation(
    accreditation_id: uuid.UUID, principal: CurrentUser, session: SessionDep
) -> AccreditationRead:
    """The owner, or a compliance officer signed in with MFA; anyone else gets 404."""
    reviewer = principal.has_role(Role.COMPLIANCE) and principal.mfa
    row = await profiles.get_accreditation(session, accreditation_id, viewer_id=None if reviewer else principal.user_id)
    return to_read(row)


@router.post("/v1/compliance/accreditations/{accreditation_id}/decision")
async def decide_accreditation(
    accreditation_id: uuid.UUID,
    body: ReviewDecision,
    principal: Reviewer,
    session: SessionDep,
    temporal: TemporalDep,
) -> AccreditationRead:
    """A workflow Update: validated (only while pending), recorded, and answered once stored."""
    await profiles.check_reviewable(session, accreditation_id, principal.user_id)
    handle = temporal.get_workflow_handle(accreditation_workflow_id(accreditation_id))
    try:
        await handle.execute_update(
            AccreditationWorkflow.decide,
            AccreditationReview(decision=body.decision, reason=body.reason, reviewer_id=principal.user_id),
        )
    except (WorkflowUpdateFailedError, RPCError) as error:
        raise AccreditationNotPending("The accreditation is no longer pending review.") from error
    session.expunge_all()
    return to_read(await profiles.get_accreditation(session, accreditation_id))


@router.get("/v1/compliance/kyc/reviews")
async def list_kyc_reviews(principal: Reviewer, session: SessionDep) -> dict[str, Any]:
    rows = await profiles.list_kyc_reviews(session)
    return {
        "items": [
            {
                "user_id": str(r.user_id),
                "check_id": str(r.id),
                "legal_name": r.legal_name,
                "created_at": r.created_at.isoformat(),
            }
            for r in rows
        ],
        "next_cursor": None,
    }


@router.post("/v1/compliance/kyc/{user_id}/decision")
async def decide_kyc(
    user_id: uuid.UUID,
    body: ReviewDecision,
    principal: Reviewer,
    session: SessionDep,
    temporal: TemporalDep,
) -> KycRead:
    """Decide a check in manual review (a workflow Update with a validator)."""
    if user_id == principal.user_id:
        raise OwnKyc("You cannot decide your own KYC.")
    await profiles.check_for_review(session, user_id)
    handle = temporal.get_workflow_handle(profiles.kyc_workflow_id(user_id))
    try:
        final = await handle.execute_update(
            KycWorkflow.decide,
            KycManualDecision(decision=body.decision, reason=body.reason, reviewer_id=principal.user_id),
        )
    except (WorkflowUpdateFailedError, RPCError) as error:
        raise KycNotInReview("This KYC check is no longer waiting for a decision.") from error
    return KycRead(status=final, workflow_id=profiles.kyc_workflow_id(user_id), reason=body.reason)
