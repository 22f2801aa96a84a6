"""Authorization holes an audit found (each test failed before its fix): MFA for reading every deal, no
self-verification of a holding, no self-unfreeze, replaced buyers are no longer participants, and a
revoked token replays nothing through `Idempotency-Key`."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal

import httpx
import pytest
from sqlmodel import select

from models.base import Money
from models.deals import DealStage, FrozenTransferPolicy, StageChange
from models.platform import IdempotencyRecord
from pap.db import SessionFactory, transaction
from services import deals, payments
from services.identity.permissions import Role
from tests.factories import login, next_totp, register_and_login
from tests.market_support import new_security

TokenFor = Callable[..., dict[str, str]]

pytestmark = pytest.mark.usefixtures("platform")


async def _deal_row(
    sessions: SessionFactory, *, seller_id: uuid.UUID, buyer_id: uuid.UUID, company_id: uuid.UUID | None = None
) -> uuid.UUID:
    """A deal projection row (no workflow, no reservation): enough for the read paths under test."""
    deal_id = uuid.uuid4()
    async with transaction(sessions) as session:
        await deals.create_deal(
            session,
            deal_id=deal_id,
            security_id=uuid.uuid4(),
            company_id=company_id or uuid.uuid4(),
            seller_id=seller_id,
            buyer_id=buyer_id,
            quantity=10,
            price=Money(amount=Decimal("12.50"), currency="USD"),
            source="brokered",
            policy=FrozenTransferPolicy(),
            reservation_reference=f"deal:{deal_id}",
        )
    return deal_id


def _type(response: httpx.Response) -> str:
    return str(response.json().get("type", "")).rsplit("/", 1)[-1]


# --- privileged roles read every deal only with MFA ---------------------------------------------------


@pytest.mark.parametrize("role", [Role.DEAL_MANAGER, Role.COMPLIANCE])
async def test_privileged_role_without_mfa_cannot_read_other_peoples_deals(
    api: httpx.AsyncClient, sessions: SessionFactory, token_for: TokenFor, role: Role
) -> None:
    deal_id = await _deal_row(sessions, seller_id=uuid.uuid4(), buyer_id=uuid.uuid4())
    no_mfa = token_for(uuid.uuid4(), role, mfa=False)

    # Control: the orders context checks MFA (marketplace.can_read_all), so this principal sees only its own.
    orders = await api.get("/v1/orders", headers=no_mfa)
    assert orders.status_code == 200 and orders.json()["items"] == [], orders.text

    one = await api.get(f"/v1/deals/{deal_id}", headers=no_mfa)
    docs = await api.get(f"/v1/deals/{deal_id}/documents", headers=no_mfa)
    page = await api.get("/v1/deals", params={"limit": 200}, headers=no_mfa)
    assert page.status_code in (200, 403), page.text
    listed = page.status_code == 200 and any(d["id"] == str(deal_id) for d in page.json()["items"])
    # Without MFA they are like any other user: not a participant, so the deal does not exist for them.
    assert (one.status_code, docs.status_code, listed) == (404, 404, False), (
        one.status_code,
        docs.status_code,
        listed,
        one.text[:300],
    )


# --- a holder never verifies their own holding (an issuer or compliance officer who also invests) ----


@pytest.mark.parametrize("verifier", ["issuer", "compliance"])
async def test_holder_cannot_verify_own_holding(
    api: httpx.AsyncClient, sessions: SessionFactory, token_for: TokenFor, verifier: str
) -> None:
    company_id, security_id = await new_security(sessions)
    user_id = uuid.uuid4()
    if verifier == "issuer":  # e.g. a founder who is the company's issuer contact and holds shares personally
        me = token_for(user_id, Role.INVESTOR, Role.ISSUER, company_id=company_id)
    else:
        me = token_for(user_id, Role.INVESTOR, Role.COMPLIANCE, mfa=True)
    declared = await api.post("/v1/holdings", json={"security_id": str(security_id), "quantity": 1_000_000}, headers=me)
    assert declared.status_code == 201, declared.text
    holding_id = declared.json()["id"]

    verified = await api.post(f"/v1/holdings/{holding_id}/verify", headers=me)
    assert verified.status_code == 403 and _type(verified) == "not-holding-verifier", verified.text
    listed = await api.get(f"/v1/holdings/{holding_id}", headers=me)
    assert listed.json()["status"] == "pending_verification", listed.text


# --- a frozen compliance officer cannot lift their own freeze ---------------------------------------


async def test_compliance_officer_cannot_unfreeze_themselves(api: httpx.AsyncClient, token_for: TokenFor) -> None:
    admin = token_for(uuid.uuid4(), Role.ADMIN)
    officer = await register_and_login(api, roles=["investor", "compliance"], admin_headers=admin)
    assert officer.totp_secret is not None
    colleague = token_for(uuid.uuid4(), Role.COMPLIANCE)

    frozen = await api.post(
        f"/v1/compliance/users/{officer.id}/freeze", json={"reason": "under investigation"}, headers=colleague
    )
    assert frozen.status_code == 200 and frozen.json()["frozen"] is True, frozen.text
    assert (await api.get("/v1/me", headers=officer.headers)).status_code == 401  # sessions ended

    again = await login(api, officer.email, officer.password, otp=next_totp(officer.totp_secret))
    assert again.status_code == 200, again.text  # a frozen account may still sign in
    headers = {"Authorization": f"Bearer {again.json()['access_token']}"}

    lifted = await api.post(f"/v1/compliance/users/{officer.id}/unfreeze", json={"reason": "me"}, headers=headers)
    assert lifted.status_code == 403 and _type(lifted) == "own-freeze", lifted.text
    still = await api.get(f"/v1/compliance/users/{officer.id}/freeze", headers=colleague)
    assert still.json()["frozen"] is True, still.text


# --- a replaced (defaulted) buyer is no longer a participant: no replacement buyer, no payments ------


async def test_defaulted_buyer_does_not_see_replacement_buyers_payment(
    api: httpx.AsyncClient, sessions: SessionFactory, token_for: TokenFor
) -> None:
    seller, first_buyer, backup_buyer = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    deal_id = await _deal_row(sessions, seller_id=seller, buyer_id=first_buyer)
    async with transaction(sessions) as session:  # what the workflow records when the backup buyer steps in
        await deals.record_stage(
            session,
            StageChange(
                deal_id=deal_id,
                event_key=f"audit-backup-{deal_id}",
                stage=DealStage.AWAITING_FUNDING,
                actor="system",
                detail="backup buyer",
                buyer_id=backup_buyer,
            ),
        )
        await payments.create_funding_instructions(
            session,
            deal_id=deal_id,
            buyer_id=backup_buyer,
            amount=Money(amount=Decimal("125.00"), currency="USD"),
            reference=f"PAP-{str(deal_id)[:8].upper()}",
        )

    # Control: the backup buyer's own view carries their payment.
    own = await api.get(f"/v1/deals/{deal_id}", headers=token_for(backup_buyer, Role.INVESTOR))
    assert own.status_code == 200 and own.json()["payments"][0]["payer_id"] == str(backup_buyer), own.text

    seen = await api.get(f"/v1/deals/{deal_id}", headers=token_for(first_buyer, Role.INVESTOR))
    assert seen.status_code == 404, seen.text
    page = await api.get("/v1/deals", headers=token_for(first_buyer, Role.INVESTOR))
    assert page.json()["items"] == [], page.text


# --- a revoked token replays nothing; credentials are never stored for replay --------------------------


async def test_a_logged_out_token_replays_no_recorded_response(
    api: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    user = await register_and_login(api)
    _, security_id = await new_security(sessions)
    key = {"Idempotency-Key": f"authz-{uuid.uuid4()}"}
    body = {"security_id": str(security_id), "quantity": 10}
    first = await api.post("/v1/holdings", json=body, headers=user.headers | key)
    assert first.status_code == 201, first.text
    again = await api.post("/v1/holdings", json=body, headers=user.headers | key)
    assert again.headers.get("idempotent-replayed") == "true" and again.status_code == first.status_code

    assert (await api.post("/v1/auth/logout", headers=user.headers)).status_code == 204
    replay = await api.post("/v1/holdings", json=body, headers=user.headers | key)
    assert replay.status_code == 401 and "idempotent-replayed" not in replay.headers, replay.text


async def test_credential_responses_are_never_recorded_for_replay_but_registration_is(
    api: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    user = await register_and_login(api)
    key = {"Idempotency-Key": f"authz-{uuid.uuid4()}"}
    first = await api.post("/v1/auth/mfa/totp", headers=user.headers | key)
    second = await api.post("/v1/auth/mfa/totp", headers=user.headers | key)
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert "idempotent-replayed" not in second.headers
    async with transaction(sessions) as session:
        stored = (
            await session.exec(select(IdempotencyRecord).where(IdempotencyRecord.key == key["Idempotency-Key"]))
        ).all()
    assert stored == []  # the TOTP secret is not kept in the idempotency table

    signup = {"Idempotency-Key": f"authz-{uuid.uuid4()}"}
    body = {
        "email": f"replay-{uuid.uuid4().hex[:8]}@example.com",
        "password": "a long enough passphrase 42",
        "full_name": "Re Play",
    }
    created = await api.post("/v1/auth/register", json=body, headers=signup)
    again = await api.post("/v1/auth/register", json=body, headers=signup)
    other = await api.post("/v1/auth/register", json=body | {"full_name": "Someone Else"}, headers=signup)
    assert created.status_code == 201, created.text
    assert (again.status_code, again.json()["id"], again.headers.get("idempotent-replayed")) == (
        201,
        created.json()["id"],
        "true",
    )
    assert other.status_code == 409  # the contract: same key, another body


# --- a buyer or seller never acts for the issuer, the platform or compliance on their own deal ---------


async def test_a_party_to_a_deal_cannot_decide_confirm_cancel_or_hold_it(
    api: httpx.AsyncClient, sessions: SessionFactory, token_for: TokenFor
) -> None:
    company_id, security_id = await new_security(sessions)
    seller, buyer = uuid.uuid4(), uuid.uuid4()
    deal_id = await _deal_row(sessions, seller_id=seller, buyer_id=buyer, company_id=company_id)
    founder_selling = token_for(seller, Role.INVESTOR, Role.ISSUER, company_id=company_id)
    manager_buying = token_for(buyer, Role.INVESTOR, Role.DEAL_MANAGER)
    officer_selling = token_for(seller, Role.INVESTOR, Role.COMPLIANCE)

    attempts = [
        await api.post(f"/v1/deals/{deal_id}/issuer-decision", json={"decision": "waive"}, headers=founder_selling),
        await api.post(f"/v1/deals/{deal_id}/settlement/confirm", headers=founder_selling),
        await api.post(f"/v1/deals/{deal_id}/cancel", json={"reason": "mine"}, headers=manager_buying),
        await api.post(f"/v1/compliance/deals/{deal_id}/hold", json={"reason": "mine"}, headers=officer_selling),
        await api.post(
            "/v1/deals",
            json={
                "security_id": str(security_id),
                "seller_id": str(uuid.uuid4()),
                "buyer_id": str(buyer),
                "quantity": 10,
                "price": {"amount": "10.00", "currency": "USD"},
            },
            headers=manager_buying,
        ),
    ]
    assert [(r.status_code, _type(r)) for r in attempts] == [(403, "party-to-the-deal")] * 5, [r.text for r in attempts]
    async with sessions() as session:
        unchanged = await deals.get_deal(session, deal_id)
    assert unchanged.stage == DealStage.CREATED.value and not unchanged.on_hold
