"""Payments over HTTP: the signed provider webhook, the sandbox rail end to end, reconciliation access."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from decimal import Decimal

import httpx
from sqlalchemy import text
from temporalio.client import Client

from models.payments import PaymentReceived
from pap.db import SessionFactory, transaction
from pap.settings import Settings
from services import payments
from services.identity.permissions import Role
from tests.deal_support import brokered_deal, parties
from tests.factories import PASSWORD
from tests.payments_support import posted, usd
from tests.support import csrf_token, eventually


async def _instructions(sessions: SessionFactory, amount: str = "200.00") -> tuple[uuid.UUID, uuid.UUID]:
    deal_id = uuid.uuid4()
    async with transaction(sessions) as session:
        instructions = await payments.create_funding_instructions(
            session, deal_id=deal_id, buyer_id=uuid.uuid4(), amount=usd(amount), reference=f"DEAL-{deal_id.hex[:8]}"
        )
    return deal_id, instructions.payment_id


async def _escrow(sessions: SessionFactory, deal_id: uuid.UUID) -> Decimal:
    async with transaction(sessions) as session:
        return (await payments.escrow_balance(session, deal_id)).amount


def _signed(settings: Settings, payload: dict[str, object] | bytes) -> tuple[bytes, dict[str, str]]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    secret = settings.payments_webhook_secret.get_secret_value()
    return body, {"Content-Type": "application/json", "X-Signature": payments.sign(secret, body)}


def _event(payment_id: uuid.UUID, amount: str) -> dict[str, object]:
    return {
        "event_id": f"evt_{uuid.uuid4().hex}",
        "payment_id": str(payment_id),
        "status": "succeeded",
        "amount": {"amount": amount, "currency": "USD"},
    }


async def test_signed_webhook_applies_once_and_a_duplicate_is_acknowledged(
    api: httpx.AsyncClient, sessions: SessionFactory, settings: Settings
) -> None:
    deal_id, payment_id = await _instructions(sessions)
    body, headers = _signed(settings, _event(payment_id, "200.00"))
    first = await api.post("/v1/payments/webhook", content=body, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json() == {"status": "applied", "payment_status": "funded", "funded": True}
    second = await api.post("/v1/payments/webhook", content=body, headers=headers)
    assert second.status_code == 200
    assert second.json()["status"] == "duplicate"
    assert await _escrow(sessions, deal_id) == Decimal("200.00")


async def test_webhook_with_a_bad_or_missing_signature_is_401_and_has_no_effect(
    api: httpx.AsyncClient, sessions: SessionFactory, settings: Settings
) -> None:
    deal_id, payment_id = await _instructions(sessions)
    body = json.dumps(_event(payment_id, "200.00")).encode()
    forged = await api.post(
        "/v1/payments/webhook",
        content=body,
        headers={"Content-Type": "application/json", "X-Signature": payments.sign("not-the-secret", body)},
    )
    missing = await api.post("/v1/payments/webhook", content=body, headers={"Content-Type": "application/json"})
    latin = await api.post(  # a header byte outside ASCII must not break the constant-time comparison
        "/v1/payments/webhook",
        content=body,
        headers=[(b"Content-Type", b"application/json"), (b"X-Signature", "sha256=\u00e9".encode("latin-1"))],
    )
    for response in (forged, missing, latin):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("/invalid-signature")
    assert await _escrow(sessions, deal_id) == 0


async def test_malformed_webhook_body_is_a_422_problem(api: httpx.AsyncClient, settings: Settings) -> None:
    for raw in (b"{not json", json.dumps({"event_id": "x", "status": "maybe"}).encode()):
        body, headers = _signed(settings, raw)
        response = await api.post("/v1/payments/webhook", content=body, headers=headers)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"


async def test_sandbox_settle_delivers_a_signed_webhook_that_funds_escrow(
    api: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    deal_id, payment_id = await _instructions(sessions, "321.50")
    response = await api.post(f"/v1/sandbox/payments/{payment_id}/settle")
    assert response.status_code == 202, response.text
    assert response.json()["amount"] == {"amount": "321.5000", "currency": "USD"}
    await eventually(lambda: _escrow(sessions, deal_id), lambda v: v == Decimal("321.50"), what="escrow funded")
    async with transaction(sessions) as session:
        assert (await payments.get_payment(session, payment_id)).status == "funded"


async def test_sandbox_partial_settle_leaves_payment_partially_funded(
    api: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    deal_id, payment_id = await _instructions(sessions, "100.00")
    response = await api.post(
        f"/v1/sandbox/payments/{payment_id}/settle", json={"amount": {"amount": "30.00", "currency": "USD"}}
    )
    assert response.status_code == 202

    async def status() -> str:
        async with transaction(sessions) as session:
            return (await payments.get_payment(session, payment_id)).status

    await eventually(status, lambda s: s == "partially_funded", what="partial funding")
    assert await _escrow(sessions, deal_id) == Decimal("30.00")


async def test_money_sent_in_another_currency_is_booked_and_returned_not_refused(
    api: httpx.AsyncClient, sessions: SessionFactory, settings: Settings
) -> None:
    """A rail that collected EUR for a USD payment has the money: a 4xx would leave it nowhere. It is kept on
    record and sent back in EUR; the USD payment and the escrow are untouched."""
    deal_id, payment_id = await _instructions(sessions, "100.00")
    event = {**_event(payment_id, "100.00"), "amount": {"amount": "95.00", "currency": "EUR"}}
    body, headers = _signed(settings, event)

    first = await api.post("/v1/payments/webhook", content=body, headers=headers)
    again = await api.post("/v1/payments/webhook", content=body, headers=headers)

    assert first.status_code == 200 and again.status_code == 200, (first.text, again.text)
    assert first.json()["status"] == "applied" and again.json()["status"] == "duplicate"
    async with transaction(sessions) as session:
        assert (await payments.get_payment(session, payment_id)).status == "awaiting_funds"
        returned = await session.execute(
            text("SELECT count(*) FROM payments.journal_entry WHERE reference = :r AND kind = :k"),
            {"r": str(deal_id), "k": "payment.wrong_currency_returned"},
        )
        assert returned.scalar_one() == 1
        assert (await payments.trial_balance(session)).ledger_balanced
    assert await _escrow(sessions, deal_id) == 0
    buyer_cash = payments.user_cash(await _payer(sessions, payment_id))
    assert await posted(sessions, buyer_cash, "EUR") == 0


async def _payer(sessions: SessionFactory, payment_id: uuid.UUID) -> uuid.UUID:
    async with transaction(sessions) as session:
        return (await payments.get_payment(session, payment_id)).payer_id


async def test_sandbox_settle_refuses_amounts_no_rail_would_send(
    api: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    _, payment_id = await _instructions(sessions, "100.00")
    for amount in (
        {"amount": "-5", "currency": "USD"},
        {"amount": "0", "currency": "USD"},
        {"amount": "5", "currency": "EUR"},
    ):
        response = await api.post(f"/v1/sandbox/payments/{payment_id}/settle", json={"amount": amount})
        assert response.status_code == 422, (amount, response.text)
        assert response.json()["errors"][0]["field"] == "amount"
    async with transaction(sessions) as session:
        assert (await payments.get_payment(session, payment_id)).status == "awaiting_funds"


async def test_a_webhook_event_id_too_long_for_the_ledger_keys_is_a_422_problem(
    api: httpx.AsyncClient, sessions: SessionFactory, settings: Settings
) -> None:
    deal_id, payment_id = await _instructions(sessions, "10.00")
    body, headers = _signed(settings, {**_event(payment_id, "10.00"), "event_id": "e" * 190})

    response = await api.post("/v1/payments/webhook", content=body, headers=headers)

    assert response.status_code == 422 and response.json()["errors"][0]["pointer"] == "/event_id"
    assert await _escrow(sessions, deal_id) == Decimal("0")


async def test_sandbox_settle_of_an_unknown_payment_is_404(api: httpx.AsyncClient) -> None:
    response = await api.post(f"/v1/sandbox/payments/{uuid.uuid4()}/settle")
    assert response.status_code == 404


async def test_reconciliation_reports_a_balanced_ledger_to_admin_and_compliance(
    api: httpx.AsyncClient, sessions: SessionFactory, token_for: Callable[..., dict[str, str]]
) -> None:
    deal_id, payment_id = await _instructions(sessions, "42.00")
    async with transaction(sessions) as session:
        await payments.record_provider_payment(
            session, event_id=f"evt_{uuid.uuid4().hex}", payment_id=payment_id, status="succeeded", amount=usd("42")
        )
    for role in (Role.ADMIN, Role.COMPLIANCE):
        response = await api.get("/v1/admin/reconciliation", headers=token_for(uuid.uuid4(), role))
        assert response.status_code == 200, response.text
        report = response.json()
        assert report["ledger_balanced"] is True
        assert report["ledger_total"] == {"amount": "0.0000", "currency": "USD"}
        assert report["shares_conserved"] is True
        assert report["fills_consistent"] is True
        assert report["discrepancies"] == []
        assert {"deal_id": str(deal_id), "amount": {"amount": "42.0000", "currency": "USD"}} in report["open_escrow"]


async def test_reconciliation_is_forbidden_to_investors_and_to_admins_without_mfa(
    api: httpx.AsyncClient, token_for: Callable[..., dict[str, str]]
) -> None:
    investor = await api.get("/v1/admin/reconciliation", headers=token_for(uuid.uuid4(), Role.INVESTOR))
    assert investor.status_code == 403
    admin = await api.get("/v1/admin/reconciliation", headers=token_for(uuid.uuid4(), Role.ADMIN, mfa=False))
    assert admin.status_code == 403
    assert admin.json()["type"].endswith("mfa-required")
    anonymous = await api.get("/v1/admin/reconciliation")
    assert anonymous.status_code == 401


async def test_webhook_signals_the_deal_workflow_when_escrow_is_funded(
    api: httpx.AsyncClient, sessions: SessionFactory, settings: Settings, temporal_client: Client
) -> None:
    deal_id, payment_id = await _instructions(sessions, "90.00")
    # A stand-in execution with the deal's id on a queue no worker polls: its history records the signal.
    handle = await temporal_client.start_workflow(
        "DealExecutionWorkflow", id=f"deal-{deal_id}", task_queue=f"payments-test-{uuid.uuid4()}"
    )
    try:
        body, headers = _signed(settings, _event(payment_id, "90.00"))
        response = await api.post("/v1/payments/webhook", content=body, headers=headers)
        assert response.status_code == 200, response.text
        history = await handle.fetch_history()
        signals = [
            e.workflow_execution_signaled_event_attributes
            for e in history.events
            if e.HasField("workflow_execution_signaled_event_attributes")
        ]
        assert [s.signal_name for s in signals] == ["payment_received"]
        (payload,) = await temporal_client.data_converter.decode(signals[0].input.payloads, [PaymentReceived])
        assert payload == PaymentReceived(payment_id=payment_id, deal_id=deal_id, amount=usd("90.00"), funded=True)
    finally:
        await handle.terminate("test done")


async def test_a_buyer_gets_funding_instructions_only_once_the_workflow_opened_them(
    api: httpx.AsyncClient, sessions: SessionFactory, token_for: Callable[..., dict[str, str]]
) -> None:
    """The deal's record may name a buyer who has no payment yet (a backup buyer, before the issuer decided on
    them): asking then is a 409 that opens nothing, not wire details for a payment the deal would never count."""
    p = await parties(api, sessions, token_for)
    params = await brokered_deal(sessions, p, quantity=10, price="20")
    async with transaction(sessions) as session:
        await session.execute(
            text("UPDATE deals.deal SET stage = 'awaiting_funding' WHERE id = :id"), {"id": params.deal_id}
        )

    early = await api.post(f"/v1/deals/{params.deal_id}/funding", headers=p.buyer.headers)
    async with httpx.AsyncClient(base_url=str(api.base_url), timeout=30) as browser:
        form = {"username": p.buyer.email, "password": PASSWORD, "csrf_token": ""}
        form["csrf_token"] = csrf_token((await browser.get("/app/login")).text)
        assert (await browser.post("/app/login", data=form)).status_code == 303
        page = await browser.get(f"/app/deals/{params.deal_id}")

    assert early.status_code == 409, early.text
    assert page.status_code == 200 and 'id="funding"' not in page.text
    async with sessions() as session:
        assert await payments.deal_payments(session, params.deal_id) == []
    async with transaction(sessions) as session:  # what the workflow's funding step does
        opened = await payments.create_funding_instructions(
            session, deal_id=params.deal_id, buyer_id=p.buyer.id, amount=usd("200"), reference="PAP-T"
        )
    ready = await api.post(f"/v1/deals/{params.deal_id}/funding", headers=p.buyer.headers)
    assert ready.status_code == 200 and ready.json()["payment_id"] == str(opened.payment_id)
