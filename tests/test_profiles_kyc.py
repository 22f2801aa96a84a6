"""Profiles, KYC through the sandbox provider and its signed webhook, accreditation reviews, buyer eligibility."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from sqlmodel import select
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.profiles import ProfilesActivities
from models.platform import OutboxEvent
from models.profiles import (
    AccreditationReview,
    AccreditationSubmit,
    AccreditationWorkflowInput,
    KycManualDecision,
    KycSubmit,
    KycWorkflowInput,
)
from pap.db import SessionFactory, transaction
from pap.settings import Settings
from services import profiles
from services.identity.permissions import Role
from services.profiles.kyc_provider import HttpKycProvider, KycProvider, sign
from tests.factories import make_verified_buyer, register_and_login
from tests.histories.record import save_if_recording
from tests.support import eventually
from workflows.profiles import AccreditationWorkflow, KycWorkflow

Headers = Callable[..., dict[str, str]]
KYC = {"legal_name": "Ada Lovelace", "date_of_birth": "1985-12-10", "country": "GB", "tax_id_last4": "4321"}


@pytest.fixture
def compliance(token_for: Headers) -> dict[str, str]:
    return token_for(uuid.uuid4(), Role.COMPLIANCE)


async def kyc_status_of(api: httpx.AsyncClient, headers: dict[str, str]) -> str:
    return str((await api.get("/v1/me", headers=headers)).json()["kyc_status"])


async def test_profile_put_then_get_for_an_entity_with_kyb(api: httpx.AsyncClient) -> None:
    user = await register_and_login(api)
    empty = (await api.get("/v1/profiles/me", headers=user.headers)).json()
    assert empty["kind"] is None and empty["kyc_status"] == "not_started"
    body = {
        "kind": "entity",
        "name": "Lovelace Capital LLC",
        "residence_country": "US",
        "contact_email": "ops@lovelace.example",
        "entity_type": "llc",
        "kyb": {
            "registration_number": "DE-123",
            "jurisdiction": "US-DE",
            "beneficial_owners": [{"name": "Ada", "ownership_pct": 60}],
        },
    }
    saved = await api.put("/v1/profiles/me", json=body, headers=user.headers)
    assert saved.status_code == 200
    got = (await api.get("/v1/profiles/me", headers=user.headers)).json()
    assert got["name"] == "Lovelace Capital LLC" and got["kyb"]["beneficial_owners"][0]["name"] == "Ada"


async def test_entity_profile_without_kyb_is_a_422(api: httpx.AsyncClient) -> None:
    user = await register_and_login(api)
    response = await api.put(
        "/v1/profiles/me", json={"kind": "entity", "name": "X", "residence_country": "US"}, headers=user.headers
    )
    assert response.status_code == 422 and response.json()["errors"]


async def test_kyc_is_approved_by_the_sandbox_webhook(api: httpx.AsyncClient) -> None:
    user = await register_and_login(api)
    response = await api.post("/v1/profiles/me/kyc", json=KYC, headers=user.headers)
    assert response.status_code == 202 and response.json()["status"] == "pending"
    assert response.json()["workflow_id"] == f"kyc-{user.id}"
    await eventually(lambda: kyc_status_of(api, user.headers), lambda s: s == "approved", what="KYC approved")
    again = await api.post("/v1/profiles/me/kyc", json=KYC, headers=user.headers)
    assert again.status_code == 409


async def test_kyc_with_reject_in_the_name_is_rejected_and_can_be_resubmitted(api: httpx.AsyncClient) -> None:
    user = await register_and_login(api)
    await api.post("/v1/profiles/me/kyc", json={**KYC, "legal_name": "REJECT Me"}, headers=user.headers)
    await eventually(lambda: kyc_status_of(api, user.headers), lambda s: s == "rejected", what="KYC rejected")
    retry = await api.post("/v1/profiles/me/kyc", json=KYC, headers=user.headers)
    assert retry.status_code == 202
    await eventually(lambda: kyc_status_of(api, user.headers), lambda s: s == "approved", what="KYC approved")


async def test_webhook_with_a_bad_signature_is_401_and_a_replay_has_no_second_effect(
    api: httpx.AsyncClient, settings: Settings, sessions: SessionFactory
) -> None:
    user = await register_and_login(api)
    await api.post("/v1/profiles/me/kyc", json={**KYC, "legal_name": "Ada NOWEBHOOK"}, headers=user.headers)
    check_id = (await api.get("/v1/profiles/me/kyc", headers=user.headers)).json()["check_id"]
    payload = {"event_id": f"evt_{uuid.uuid4().hex}", "check_id": check_id, "reference": "ref", "status": "rejected"}
    raw = json.dumps(payload).encode()
    secret = settings.kyc_webhook_secret.get_secret_value()

    forged = await api.post("/v1/profiles/kyc/webhook", content=raw, headers={"X-Signature": sign(raw, "guess")})
    assert forged.status_code == 401
    unsigned = await api.post("/v1/profiles/kyc/webhook", content=raw)
    assert unsigned.status_code == 401
    latin = await api.post(
        "/v1/profiles/kyc/webhook", content=raw, headers=[(b"X-Signature", "\u00e9".encode("latin-1"))]
    )
    assert latin.status_code == 401  # a header byte outside ASCII is just a wrong signature

    first = await api.post("/v1/profiles/kyc/webhook", content=raw, headers={"X-Signature": sign(raw, secret)})
    assert first.status_code == 200 and first.json()["status"] == "accepted"
    await eventually(lambda: kyc_status_of(api, user.headers), lambda s: s == "rejected", what="KYC rejected")
    replay = await api.post("/v1/profiles/kyc/webhook", content=raw, headers={"X-Signature": sign(raw, secret)})
    assert replay.status_code == 200 and replay.json()["status"] == "duplicate"
    async with transaction(sessions) as session:
        decided = (
            await session.exec(
                select(OutboxEvent).where(OutboxEvent.type == "profiles.kyc.rejected", OutboxEvent.key == str(user.id))
            )
        ).all()
    assert len(decided) == 1


async def test_malformed_signed_webhook_is_a_422_not_a_500(api: httpx.AsyncClient, settings: Settings) -> None:
    raw = b'{"event_id": "x", "status": "maybe"}'
    response = await api.post(
        "/v1/profiles/kyc/webhook",
        content=raw,
        headers={"X-Signature": sign(raw, settings.kyc_webhook_secret.get_secret_value())},
    )
    assert response.status_code == 422 and response.json()["errors"]


async def test_accreditation_review_by_compliance_and_a_second_decision_is_409(
    api: httpx.AsyncClient, compliance: dict[str, str]
) -> None:
    user = await register_and_login(api)
    created = await api.post("/v1/profiles/me/accreditation", json={"method": "net_worth"}, headers=user.headers)
    assert created.status_code == 202 and created.json()["status"] == "pending_review"
    acc_id = created.json()["id"]
    assert (
        await api.post("/v1/profiles/me/accreditation", json={"method": "income"}, headers=user.headers)
    ).status_code == 409
    decided = await api.post(
        f"/v1/compliance/accreditations/{acc_id}/decision",
        json={"decision": "reject", "reason": "statement too old"},
        headers=compliance,
    )
    assert decided.status_code == 200 and decided.json()["status"] == "rejected"
    again = await api.post(
        f"/v1/compliance/accreditations/{acc_id}/decision",
        json={"decision": "approve", "reason": "changed my mind"},
        headers=compliance,
    )
    assert again.status_code == 409
    assert (await api.get("/v1/me", headers=user.headers)).json()["accreditation_status"] == "rejected"


async def test_investor_cannot_decide_accreditations(api: httpx.AsyncClient) -> None:
    user = await register_and_login(api)
    acc_id = (await api.post("/v1/profiles/me/accreditation", json={"method": "income"}, headers=user.headers)).json()[
        "id"
    ]
    response = await api.post(
        f"/v1/compliance/accreditations/{acc_id}/decision",
        json={"decision": "approve", "reason": "self-service"},
        headers=user.headers,
    )
    assert response.status_code == 403


async def test_verified_buyer_is_eligible_and_a_new_user_is_not(
    api: httpx.AsyncClient, compliance: dict[str, str], sessions: SessionFactory
) -> None:
    buyer = await make_verified_buyer(api, compliance_headers=compliance)
    newcomer = await register_and_login(api)
    async with transaction(sessions) as session:
        ok = await profiles.buyer_eligibility(session, buyer.id)
        no = await profiles.buyer_eligibility(session, newcomer.id)
        assert await profiles.kyc_status(session, buyer.id) == "approved"
    assert ok.eligible and ok.reasons == []
    assert not no.eligible and set(no.reasons) == {"kyc_not_started", "accreditation_none"}


async def _worker(
    env: WorkflowEnvironment, sessions: SessionFactory, settings: Settings, provider: KycProvider | None = None
) -> tuple[Worker, str]:
    queue = f"profiles-{uuid.uuid4().hex}"
    acts = ProfilesActivities(sessions, settings, provider)
    worker = Worker(
        env.client,
        task_queue=queue,
        workflows=[KycWorkflow, AccreditationWorkflow],
        activities=[
            acts.kyc_request_check,
            acts.kyc_set_status,
            acts.accreditation_record_decision,
            acts.accreditation_expire,
        ],
    )
    return worker, queue


async def test_accreditation_expires_after_90_days_and_emits_an_event(
    time_skipping_env: WorkflowEnvironment, sessions: SessionFactory, settings: Settings
) -> None:
    user_id = uuid.uuid4()
    async with transaction(sessions) as session:
        row = await profiles.submit_accreditation(session, user_id, AccreditationSubmit(method="income"))
    worker, queue = await _worker(time_skipping_env, sessions, settings)
    client: Client = time_skipping_env.client
    async with worker:
        handle = await client.start_workflow(
            AccreditationWorkflow.run,
            AccreditationWorkflowInput(accreditation_id=row.id, user_id=user_id),
            id=f"accreditation-{row.id}",
            task_queue=queue,
        )
        outcome = await handle.execute_update(
            AccreditationWorkflow.decide, AccreditationReview(decision="approve", reason="ok", reviewer_id=uuid.uuid4())
        )
        assert outcome.status == "approved" and outcome.expires_at is not None
        async with transaction(sessions) as session:
            assert await profiles.accreditation_status(session, user_id) == "approved"
            approved = await profiles.get_accreditation(session, row.id)
            assert approved.expires_at is not None and approved.decided_at is not None
            assert approved.expires_at - approved.decided_at == timedelta(days=90)
        assert await handle.result() == "expired"
    async with transaction(sessions) as session:
        assert await profiles.accreditation_status(session, user_id) == "expired"
        assert not (await profiles.buyer_eligibility(session, user_id)).eligible
        events = (
            await session.exec(
                select(OutboxEvent).where(
                    OutboxEvent.type == "profiles.accreditation.expired", OutboxEvent.key == str(user_id)
                )
            )
        ).all()
    assert len(events) == 1


async def test_kyc_without_provider_answer_goes_to_manual_review_then_compliance_decides(
    time_skipping_env: WorkflowEnvironment, sessions: SessionFactory, settings: Settings, api: httpx.AsyncClient
) -> None:
    user_id = uuid.uuid4()
    submit = KycSubmit.model_validate({**KYC, "legal_name": "Silent NOWEBHOOK"})
    async with transaction(sessions) as session:
        check = await profiles.submit_kyc(session, user_id, submit)
    worker, queue = await _worker(time_skipping_env, sessions, settings)
    async with worker:
        handle = await time_skipping_env.client.start_workflow(
            KycWorkflow.run,
            KycWorkflowInput(user_id=user_id, check_id=check.id, index_status=False, **submit.model_dump()),
            id=f"kyc-{user_id}",
            task_queue=queue,
        )
        reviewer = uuid.uuid4()
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                KycWorkflow.decide, KycManualDecision(decision="approve", reason="early", reviewer_id=reviewer)
            )
        assert "manual_review" in str(refused.value.cause)
        await time_skipping_env.sleep(timedelta(days=2, minutes=1))

        async def status() -> str:
            async with transaction(sessions) as session:
                return await profiles.kyc_status(session, user_id)

        await eventually(status, lambda s: s == "manual_review", what="manual review")
        final = await handle.execute_update(
            KycWorkflow.decide, KycManualDecision(decision="approve", reason="documents ok", reviewer_id=reviewer)
        )
        assert final == "approved"
        assert await handle.result() == "approved"
    assert await status() == "approved"


async def test_kyc_goes_to_manual_review_when_the_provider_stays_unreachable(
    time_skipping_env: WorkflowEnvironment, sessions: SessionFactory, settings: Settings
) -> None:
    user_id = uuid.uuid4()
    submit = KycSubmit.model_validate(KYC)
    async with transaction(sessions) as session:
        check = await profiles.submit_kyc(session, user_id, submit)
    nobody_listens = HttpKycProvider(f"http://127.0.0.1:{closed_port()}/v1", timeout=2.0)
    worker, queue = await _worker(time_skipping_env, sessions, settings, nobody_listens)
    async with worker:
        handle = await time_skipping_env.client.start_workflow(
            KycWorkflow.run,
            KycWorkflowInput(user_id=user_id, check_id=check.id, index_status=False, **submit.model_dump()),
            id=f"kyc-{user_id}",
            task_queue=queue,
        )

        async def status() -> str:
            async with transaction(sessions) as session:
                return await profiles.kyc_status(session, user_id)

        await time_skipping_env.sleep(timedelta(days=2, minutes=1))  # the provider's answer window, retrying
        await eventually(status, lambda s: s == "manual_review", what="manual review")
        final = await handle.execute_update(
            KycWorkflow.decide, KycManualDecision(decision="approve", reason="documents ok", reviewer_id=uuid.uuid4())
        )
        assert final == "approved" and await handle.result() == "approved"
        await save_if_recording(time_skipping_env.client, f"kyc-{user_id}", "KycWorkflow--provider-unreachable")
    async with transaction(sessions) as session:
        decided = await profiles.latest_kyc(session, user_id)
    assert decided is not None and decided.reason == "documents ok"


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_compliance_decides_kyc_in_manual_review_through_the_api(
    api: httpx.AsyncClient, compliance: dict[str, str], temporal_client: Client
) -> None:
    user = await register_and_login(api)
    early = await api.post(
        f"/v1/compliance/kyc/{user.id}/decision", json={"decision": "approve", "reason": "x"}, headers=compliance
    )
    assert early.status_code == 404
    await api.post("/v1/profiles/me/kyc", json={**KYC, "legal_name": "Quiet NOWEBHOOK"}, headers=user.headers)
    pending = await api.post(
        f"/v1/compliance/kyc/{user.id}/decision", json={"decision": "approve", "reason": "x"}, headers=compliance
    )
    assert pending.status_code == 409
    assert await kyc_status_of(api, user.headers) == "pending"


async def test_a_check_whose_workflow_never_started_gets_it_on_resubmission(
    api: httpx.AsyncClient, sessions: SessionFactory, compliance: dict[str, str]
) -> None:
    user = await register_and_login(api)
    async with transaction(sessions) as session:  # saved, then Temporal was away: no workflow started
        await profiles.submit_kyc(session, user.id, KycSubmit.model_validate(KYC))
        stuck = await profiles.submit_accreditation(session, user.id, AccreditationSubmit(method="income"))

    kyc = await api.post("/v1/profiles/me/kyc", json=KYC, headers=user.headers)
    accreditation = await api.post("/v1/profiles/me/accreditation", json={"method": "income"}, headers=user.headers)

    assert kyc.status_code == 409 and accreditation.status_code == 409  # still one check and one accreditation
    await eventually(lambda: kyc_status_of(api, user.headers), lambda s: s == "approved", what="KYC approved")
    decided = await api.post(
        f"/v1/compliance/accreditations/{stuck.id}/decision",
        json={"decision": "approve", "reason": "statements ok"},
        headers=compliance,
    )
    assert decided.status_code == 200, decided.text


async def test_a_late_second_verdict_is_acknowledged_and_changes_nothing(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    user = await register_and_login(api)
    await api.post("/v1/profiles/me/kyc", json=KYC, headers=user.headers)
    await eventually(lambda: kyc_status_of(api, user.headers), lambda s: s == "approved", what="KYC approved")
    check_id = (await api.get("/v1/profiles/me/kyc", headers=user.headers)).json()["check_id"]
    late = {"event_id": f"evt_{uuid.uuid4().hex}", "check_id": check_id, "reference": "ref", "status": "rejected"}
    raw = json.dumps(late).encode()

    response = await api.post(
        "/v1/profiles/kyc/webhook",
        content=raw,
        headers={"X-Signature": sign(raw, settings.kyc_webhook_secret.get_secret_value())},
    )

    assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert await kyc_status_of(api, user.headers) == "approved"


async def test_a_reviewer_deciding_their_own_kyc_is_forbidden(api: httpx.AsyncClient, token_for: Headers) -> None:
    reviewer = uuid.uuid4()
    response = await api.post(
        f"/v1/compliance/kyc/{reviewer}/decision",
        json={"decision": "approve", "reason": "me"},
        headers=token_for(reviewer, Role.COMPLIANCE),
    )
    assert response.status_code == 403 and response.json()["type"].endswith("/own-kyc")
