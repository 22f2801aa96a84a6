"""The investor web app (/app) under hostile use: hostile form input, CSRF, object authorization, XSS and redirects.

Plain httpx against the running API process. A browser is simulated by sending the session
cookie (`access|refresh`) and a CSRF cookie together with the matching `X-CSRF-Token` header.

The first group pins problems an audit found (each failed before its fix); the rest guard what held.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import col, select

import web
from models.base import Money
from models.deals import FrozenTransferPolicy
from models.documents import (
    DealTerms,
    DocumentKind,
    DocumentRead,
    Party,
    RequestContext,
    SignatureRequest,
    SignerSpec,
)
from models.holdings import Holding
from models.marketplace import Order
from models.notifications import Notification
from pap.db import SessionFactory, transaction
from pap.settings import Settings
from pap.storage import LocalObjectStore
from services import deals, documents, holdings
from services.identity.permissions import Role
from services.identity.tokens import KeyRing, Principal
from tests.factories import PASSWORD, TestUser, register_and_login
from tests.market_support import new_security, verified_lot
from tests.marketplace_support import order_body, place, seller_with_shares

TokenFor = Callable[..., dict[str, str]]
CSRF = "audit-csrf-token-0123456789abcdefghijklmnop"
NON_ASCII_DIGITS = "\u0661\u0662\u0663\u0664\u0665\u0666"  # "١٢٣٤٥٦": str.isdigit() is True, six characters


# --- helpers -----------------------------------------------------------------------------------------------


def _cookie_headers(session: str | None, *, csrf: str | None = CSRF) -> dict[str, str]:
    cookies = []
    if csrf is not None:
        cookies.append(f"pap_csrf={csrf}")
    if session is not None:
        cookies.append(f"pap_session={session}")
    headers = {"Cookie": "; ".join(cookies)} if cookies else {}
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    return headers


@asynccontextmanager
async def browser(
    api: httpx.AsyncClient, session: str | None = None, *, csrf: str | None = CSRF
) -> AsyncIterator[httpx.AsyncClient]:
    """A cookie-authenticated 'browser'; `csrf=None` sends neither the CSRF cookie nor the header."""
    async with httpx.AsyncClient(
        base_url=str(api.base_url), timeout=60, headers=_cookie_headers(session, csrf=csrf)
    ) as client:
        yield client


def cookie_of(keyring: KeyRing, user_id: uuid.UUID, *roles: Role) -> str:
    """A session cookie for a synthetic principal (no refresh token)."""
    principal = Principal(user_id=user_id, roles=frozenset(roles or {Role.INVESTOR}), mfa=True)
    return keyring.issue(principal) + "|"


def cookie_of_user(user: TestUser) -> str:
    return user.headers["Authorization"].removeprefix("Bearer ") + "|" + user.refresh_token


DROPPED = 599
"""Stands for "the server closed the connection": after an unhandled error uvicorn may close it mid-response."""


async def status_of(client: httpx.AsyncClient, method: str, path: str, **kwargs: object) -> tuple[int, str]:
    try:
        response = await client.request(method, path, **kwargs)  # type: ignore[arg-type]
    except httpx.TransportError as error:
        return DROPPED, repr(error)
    return response.status_code, response.text


def is_html(response: httpx.Response) -> bool:
    return str(response.headers.get("content-type", "")).startswith("text/html")


def hidden_inputs(page: str, action: str) -> dict[str, str]:
    """The hidden fields of the form posting to `action` (CSRF token, and any form nonce a fix may add)."""
    form = re.search(rf'<form[^>]*action="{re.escape(action)}"[^>]*>(.*?)</form>', page, re.S)
    assert form, f"no form for {action}"
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form.group(1)))


async def count(sessions: SessionFactory, model: type, **where: object) -> int:
    async with sessions() as session:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(col(getattr(model, name)) == value)
        return int((await session.execute(query)).scalar_one())


@pytest.fixture
def store(settings: Settings) -> LocalObjectStore:
    """The same folder the API process reads objects from."""
    return LocalObjectStore(settings.state_dir / "objects")


async def deal_with_document(
    sessions: SessionFactory, store: LocalObjectStore
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, DocumentRead]:
    """A deal row (stage `created`, no workflow) between two synthetic investors and its transfer agreement.

    Returns (deal_id, seller_id, buyer_id, document).
    """
    company_id, security_id = await new_security(sessions)
    seller_id, buyer_id, deal_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await verified_lot(sessions, seller_id, security_id, 1_000)
    reference = f"deal:{deal_id}"
    async with transaction(sessions) as session:
        await holdings.reserve_shares(
            session, owner_id=seller_id, security_id=security_id, quantity=100, reference=reference
        )
        await deals.create_deal(
            session,
            deal_id=deal_id,
            security_id=security_id,
            company_id=company_id,
            seller_id=seller_id,
            buyer_id=buyer_id,
            quantity=100,
            price=Money(amount=Decimal("12.50"), currency="USD"),
            source="brokered",
            policy=FrozenTransferPolicy(),
            reservation_reference=reference,
        )
    seller = SignerSpec(user_id=seller_id, role="seller", name="Sally Seller", email="s@example.com", order=1)
    buyer = SignerSpec(user_id=buyer_id, role="buyer", name="Bob Buyer", email="b@example.com", order=2)
    terms = DealTerms(
        deal_id=deal_id,
        company_id=company_id,
        company_name="Acme",
        company_legal_name="Acme Robotics, Inc.",
        security_class="Common",
        seller=Party(id=seller_id, name=seller.name),
        buyer=Party(id=buyer_id, name=buyer.name),
        quantity=100,
        price_per_share=Money(amount=Decimal("12.50")),
        total=Money(amount=Decimal("1250.00")),
        transfer_fee=Money(amount=Decimal("25.00")),
        date=dt.date(2026, 1, 2),
    )
    async with transaction(sessions) as session:
        doc = await documents.generate_document(
            session,
            store,
            deal_id=deal_id,
            kind=DocumentKind.STOCK_TRANSFER_AGREEMENT,
            terms=terms,
            signers=[seller, buyer],
        )
    return deal_id, seller_id, buyer_id, doc


async def signer_status(sessions: SessionFactory, document_id: uuid.UUID, user_id: uuid.UUID) -> str:
    async with sessions() as session:
        row = (
            await session.exec(
                select(SignatureRequest).where(
                    SignatureRequest.document_id == document_id, SignatureRequest.user_id == user_id
                )
            )
        ).one()
        return str(row.status)


# --- confirmed problems ----------------------------------------------------------------------------------


async def test_login_with_a_non_ascii_digit_code_is_refused_not_a_500(api: httpx.AsyncClient) -> None:
    """Password + code in one post (str.isdigit() is True for "١٢٣٤٥٦", so it is taken for a TOTP code)."""
    user = await register_and_login(api, enrol_mfa=True)
    async with browser(api) as b:
        status, body = await status_of(
            b, "POST", "/app/login", data={"username": user.email, "password": PASSWORD, "otp": NON_ASCII_DIGITS}
        )
    assert status == 401, body[:300]


async def test_login_code_step_with_a_non_ascii_digit_code_is_refused_not_a_500(api: httpx.AsyncClient) -> None:
    """The second step of the web login (signed challenge + code)."""
    user = await register_and_login(api, enrol_mfa=True)
    async with browser(api) as b:
        asked = await b.post("/app/login", data={"username": user.email, "password": PASSWORD})
        assert asked.status_code == 401
        challenge = re.search(r'name="challenge" value="([^"]+)"', asked.text)
        assert challenge is not None
        status, body = await status_of(
            b,
            "POST",
            "/app/login",
            data={"username": user.email, "challenge": challenge.group(1), "otp": NON_ASCII_DIGITS},
        )
    assert status == 401, body[:300]


async def test_mfa_enrolment_with_a_non_ascii_digit_code_is_refused_not_a_500(api: httpx.AsyncClient) -> None:
    user = await register_and_login(api)
    async with browser(api, cookie_of_user(user)) as b:
        started = await b.post("/app/security/mfa")
        assert started.status_code == 200, started.text[:300]
        status, body = await status_of(b, "POST", "/app/security/mfa/verify", data={"code": NON_ASCII_DIGITS})
        assert status < 500, body[:300]
        assert "does not match" in body
        page = await b.get("/app/security")
    assert "Two-factor authentication is now on" not in page.text


async def test_api_totp_verify_with_non_ascii_digits_is_a_problem_not_a_500(api: httpx.AsyncClient) -> None:
    """Not a web route, but the same helper: `^\\d{6}$` (Rust regex, Unicode-aware) lets "١٢٣٤٥٦" through."""
    user = await register_and_login(api)
    assert (await api.post("/v1/auth/mfa/totp", headers=user.headers)).status_code == 200
    response = await api.post("/v1/auth/mfa/totp/verify", json={"code": NON_ASCII_DIGITS}, headers=user.headers)
    assert response.status_code in (400, 422), response.text


async def test_cancel_or_amend_of_an_unknown_or_foreign_order_is_a_clear_404(
    api: httpx.AsyncClient, sessions: SessionFactory, token_for: TokenFor, keyring: KeyRing
) -> None:
    _, security_id = await new_security(sessions)
    _, owner = await seller_with_shares(api, token_for, security_id, 500)
    order = await place(api, owner, order_body(security_id, "sell", 100, "10.00"))
    async with browser(api, cookie_of(keyring, uuid.uuid4())) as stranger:
        foreign_cancel = await stranger.post(f"/app/orders/{order['id']}/cancel")
        foreign_amend = await stranger.post(f"/app/orders/{order['id']}/amend", data={"quantity": "1"})
        unknown = await stranger.post(f"/app/orders/{uuid.uuid4()}/cancel")
    observed = [(r.status_code, r.text.strip() != "") for r in (foreign_cancel, foreign_amend, unknown)]
    assert observed == [(404, True)] * 3, observed


async def test_a_double_submitted_order_or_holding_form_acts_once(
    api: httpx.AsyncClient, sessions: SessionFactory, token_for: TokenFor, keyring: KeyRing
) -> None:
    _, security_id = await new_security(sessions)
    seller_id, _ = await seller_with_shares(api, token_for, security_id, 500)
    async with browser(api, cookie_of(keyring, seller_id)) as b:
        page = await b.get("/app/orders")
        order = hidden_inputs(page.text, "/app/orders") | {
            "security_id": str(security_id),
            "side": "sell",
            "quantity": "100",
            "limit_price": "10.00",
        }
        first = await b.post("/app/orders", data=order)
        second = await b.post("/app/orders", data=order)  # the double click / the browser's resubmit
        assert (first.status_code, second.status_code < 500) == (303, True), first.text[:300]
        page = await b.get("/app/holdings")
        holding = hidden_inputs(page.text, "/app/holdings") | {"security_id": str(security_id), "quantity": "7"}
        for _ in range(2):
            assert (await b.post("/app/holdings", data=holding)).status_code < 500
    orders = await count(sessions, Order, user_id=seller_id)
    lots = await count(sessions, Holding, owner_id=seller_id)
    assert (orders, lots) == (1, 2), "1 order; the verified lot of 500 + one new lot of 7"


KYC_FORM = {"legal_name": "Ada Lovelace", "date_of_birth": "1985-12-10", "country": "US", "tax_id_last4": "1234"}


async def _parallel_submits(api: httpx.AsyncClient, user: TestUser) -> list[int]:
    async with browser(api, cookie_of_user(user)) as b:
        kyc = await asyncio.gather(*(status_of(b, "POST", "/app/verification/kyc", data=KYC_FORM) for _ in range(6)))
        accreditation = await asyncio.gather(
            *(status_of(b, "POST", "/app/verification/accreditation", data={"method": "income"}) for _ in range(6))
        )
    return [status for status, _ in kyc + accreditation]


async def test_parallel_kyc_and_accreditation_submits_record_one_each(
    api: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    """A double click arriving in parallel (six at once, for three users)."""
    from models.profiles import Accreditation, KycCheck

    counts = []
    for _ in range(3):
        user = await register_and_login(api)
        statuses = await _parallel_submits(api, user)
        assert all(status < 500 for status in statuses), statuses
        counts.append(
            (await count(sessions, KycCheck, user_id=user.id), await count(sessions, Accreditation, user_id=user.id))
        )
    assert counts == [(1, 1)] * 3, counts


async def test_an_over_long_signature_name_gets_a_form_error_not_a_json_problem(
    api: httpx.AsyncClient, sessions: SessionFactory, store: LocalObjectStore, keyring: KeyRing
) -> None:
    deal_id, seller_id, _, doc = await deal_with_document(sessions, store)
    async with browser(api, cookie_of(keyring, seller_id)) as b:
        response = await b.post(
            f"/app/deals/{deal_id}/documents/{doc.id}/sign", data={"signature_name": "A" * 300, "consent": "yes"}
        )
    assert await signer_status(sessions, doc.id, seller_id) == "pending"  # nothing changed either way
    assert response.status_code == 422
    assert is_html(response), response.headers.get("content-type")


async def test_a_signature_name_with_line_breaks_is_refused(
    api: httpx.AsyncClient, sessions: SessionFactory, store: LocalObjectStore, keyring: KeyRing
) -> None:
    from services.documents.certificate import CertificateSigner, certificate_text

    deal_id, seller_id, buyer_id, doc = await deal_with_document(sessions, store)
    forged = 'Sally Seller"\n- Bob Buyer (buyer, ' + str(buyer_id) + ') signed as "Bob Buyer'
    async with browser(api, cookie_of(keyring, seller_id)) as b:
        response = await b.post(
            f"/app/deals/{deal_id}/documents/{doc.id}/sign", data={"signature_name": forged, "consent": "yes"}
        )
    # what the executed copy's certificate page would say (services/documents/certificate.py:63)
    now = dt.datetime.now(dt.UTC)
    text = certificate_text(
        document_id=str(doc.id),
        kind=doc.kind,
        deal_id=str(deal_id),
        sha256=doc.sha256,
        signers=[CertificateSigner("Sally Seller", "seller", str(seller_id), forged, now, "127.0.0.1")],
        events=[],
    )
    signers_section = text.split("## Signers")[1].split("## Audit trail")[0].strip()
    assert response.status_code == 422, (response.status_code, signers_section)
    assert await signer_status(sessions, doc.id, seller_id) == "pending"


async def test_an_empty_amend_changes_nothing(
    api: httpx.AsyncClient, sessions: SessionFactory, token_for: TokenFor, keyring: KeyRing
) -> None:
    from models.platform import OutboxEvent

    _, security_id = await new_security(sessions)
    seller_id, owner = await seller_with_shares(api, token_for, security_id, 500)
    order = await place(api, owner, order_body(security_id, "sell", 100, "10.00"))

    async def state() -> tuple[int, int]:
        async with sessions() as session:
            row = await session.get(Order, uuid.UUID(order["id"]))
            events = await session.execute(
                select(func.count()).select_from(OutboxEvent).where(col(OutboxEvent.subject) == order["id"])
            )
            assert row is not None
            return row.version, int(events.scalar_one())

    before = await state()
    async with browser(api, cookie_of(keyring, seller_id)) as b:
        response = await b.post(f"/app/orders/{order['id']}/amend", data={"quantity": "", "limit_price": " "})
    assert response.status_code < 500
    assert await state() == before, (before, await state(), response.status_code)


async def test_a_negative_cost_basis_or_future_acquisition_date_is_refused(
    api: httpx.AsyncClient, sessions: SessionFactory, keyring: KeyRing
) -> None:
    _, security_id = await new_security(sessions)
    user_id = uuid.uuid4()
    future = (dt.date.today() + dt.timedelta(days=365)).isoformat()
    async with browser(api, cookie_of(keyring, user_id)) as b:
        negative = await b.post(
            "/app/holdings", data={"security_id": str(security_id), "quantity": "10", "cost_basis": "-5000"}
        )
        later = await b.post(
            "/app/holdings", data={"security_id": str(security_id), "quantity": "10", "acquisition_date": future}
        )
    assert (negative.status_code, later.status_code) == (422, 422)
    assert await count(sessions, Holding, owner_id=user_id) == 0


# --- regression guards (these pass) ----------------------------------------------------------------------


def _post_routes() -> list[str]:
    """Every POST route of /app (FastAPI keeps included routers as lazy `_IncludedRouter` entries)."""
    routes: list[str] = []

    def walk(router: object, prefix: str) -> None:
        for route in getattr(router, "routes", []):
            nested = getattr(route, "original_router", None)
            if nested is not None:
                walk(nested, prefix + getattr(router, "prefix", ""))  # a route's path has its own router's prefix
            elif "POST" in (getattr(route, "methods", None) or set()):
                path = prefix + route.path
                routes.append(re.sub(r"\{[^}]+\}", lambda _: str(uuid.uuid4()), path))

    walk(web.router, "")
    assert routes, "found no POST routes"
    return routes


def test_the_csrf_route_list_is_complete() -> None:
    paths = {re.sub(r"[0-9a-f-]{36}", "{id}", p) for p in _post_routes()}
    assert paths == {
        "/app/signup",
        "/app/login",
        "/app/logout",
        "/app/security/sessions/{id}/revoke",
        "/app/security/mfa",
        "/app/security/mfa/verify",
        "/app/security/password",
        "/app/password-reset",
        "/app/password-reset/confirm",
        "/app/notifications/{id}/read",
        "/app/notifications/read-all",
        "/app/verification/kyc",
        "/app/verification/accreditation",
        "/app/holdings",
        "/app/orders",
        "/app/orders/{id}/cancel",
        "/app/orders/{id}/amend",
        "/app/deals/{id}/documents/{id}/sign",
    }, "a new POST route: add it to the audit"


async def test_every_post_route_refuses_a_missing_or_forged_csrf_token(
    api: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    user = await register_and_login(api)
    session = cookie_of_user(user)
    failures: list[tuple[object, ...]] = []
    async with browser(api, session, csrf=None) as no_cookie:
        for path in _post_routes():
            for client, extra_headers, data in (
                (no_cookie, {"Cookie": f"pap_session={session}"}, {"csrf_token": CSRF}),  # no CSRF cookie at all
                (no_cookie, {"Cookie": f"pap_session={session}; pap_csrf={CSRF}"}, {}),  # cookie, nothing sent
                (no_cookie, {"Cookie": f"pap_session={session}; pap_csrf={CSRF}"}, {"csrf_token": "forged"}),
                (no_cookie, {"Cookie": f"pap_session={session}; pap_csrf={CSRF}"}, {"csrf_token": "fälschung-٣"}),
                (no_cookie, {"Cookie": f"pap_session={session}; pap_csrf={CSRF}", "X-CSRF-Token": "forged"}, {}),
            ):
                response = await client.post(path, data=data or None, headers=extra_headers)
                if response.status_code != 403 or not is_html(response):
                    failures.append((path, extra_headers.keys(), data, response.status_code))
            # a text/plain "form" (what a cross-site <form enctype="text/plain"> sends) is not read for the token
            plain = await no_cookie.post(
                path,
                content=f"csrf_token={CSRF}",
                headers={"Cookie": f"pap_session={session}; pap_csrf={CSRF}", "Content-Type": "text/plain"},
            )
            if plain.status_code != 403:
                failures.append((path, "text/plain", plain.status_code))
    assert failures == []
    async with sessions() as s:  # the refused /app/security/mfa started nothing
        from models.identity import User

        row = await s.get(User, user.id)
        assert row is not None and row.totp_secret is None
    # and the session still works (the refused /app/logout ended nothing)
    async with browser(api, session) as b:
        assert (await b.get("/app/security")).status_code == 200


@pytest.mark.parametrize(
    "cookie",
    [
        "garbage",
        "|",
        "a|b",
        "x" * 3000 + "|" + "y" * 3000,
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.|",  # alg none
        "\u00e9\u00e8|\u00ff",  # latin-1 bytes on the wire
    ],
)
async def test_a_bad_session_cookie_is_sent_to_the_login_page(api: httpx.AsyncClient, cookie: str) -> None:
    async with httpx.AsyncClient(base_url=str(api.base_url), timeout=30) as client:
        headers: dict[bytes, bytes] = {b"Cookie": f"pap_session={cookie}; pap_csrf={CSRF}".encode("latin-1")}
        page = await client.get("/app/holdings", headers=headers)
        assert page.status_code == 303 and page.headers["location"] == "/app/login?next=%2Fapp%2Fholdings"
        post = await client.post(
            "/app/holdings", data={"quantity": "1"}, headers=headers | {b"X-CSRF-Token": CSRF.encode()}
        )
        assert post.status_code == 303 and post.headers["location"] == "/app/login"
        htmx = await client.post(
            f"/app/orders/{uuid.uuid4()}/cancel",
            headers=headers | {b"X-CSRF-Token": CSRF.encode(), b"HX-Request": b"true"},
        )
        assert htmx.status_code == 204 and htmx.headers["hx-redirect"] == "/app/login"


async def test_an_mfa_challenge_or_expired_token_is_no_session(api: httpx.AsyncClient, keyring: KeyRing) -> None:
    user_id = uuid.uuid4()
    challenge = keyring.issue_mfa_challenge(user_id, "x@example.com")  # another audience
    expired = keyring.issue(Principal(user_id=user_id, roles=frozenset({Role.INVESTOR})), ttl=-60)
    for cookie in (challenge + "|", expired + "|", expired + "|not-a-refresh-token"):
        async with browser(api, cookie) as b:
            response = await b.get("/app/orders")
        assert response.status_code == 303 and response.headers["location"] == "/app/login?next=%2Fapp%2Forders", cookie


async def test_hostile_form_and_path_values_never_answer_500_and_change_nothing(
    api: httpx.AsyncClient, sessions: SessionFactory, keyring: KeyRing
) -> None:
    """Unparsable numbers, decimals, dates and UUIDs, NULs, huge and negative values, wrong enums."""
    _, security_id = await new_security(sessions)
    user_id = uuid.uuid4()
    sid = str(security_id)
    nul = "a\x00b"
    holdings_forms = [
        {},
        {"security_id": "not-a-uuid", "quantity": "1"},
        {"security_id": str(uuid.uuid4()), "quantity": "1"},
        {"security_id": sid, "quantity": "-1"},
        {"security_id": sid, "quantity": "0"},
        {"security_id": sid, "quantity": "1e3"},
        {"security_id": sid, "quantity": "9" * 5000},
        {"security_id": sid, "quantity": str(10**16)},
        {"security_id": sid, "quantity": "1", "cost_basis": "NaN"},
        {"security_id": sid, "quantity": "1", "cost_basis": "sNaN"},
        {"security_id": sid, "quantity": "1", "cost_basis": "1e999999999"},
        {"security_id": sid, "quantity": "1", "cost_basis": "abc"},
        {"security_id": sid, "quantity": "1", "acquisition_date": "2024-02-30"},
        {"security_id": sid, "quantity": "1", "acquisition_date": "0000-01-01"},
        {"security_id": sid, "quantity": "1", "acquisition_date": nul},
        {"security_id": nul, "quantity": nul},
    ]
    order_forms = [
        {},
        {"security_id": sid, "side": "hold", "quantity": "1", "limit_price": "1"},
        {"security_id": sid, "side": "buy", "quantity": "0", "limit_price": "1"},
        {"security_id": sid, "side": "sell", "quantity": "-5", "limit_price": "1"},
        {"security_id": sid, "side": "sell", "quantity": str(10**30), "limit_price": "1"},
        {"security_id": sid, "side": "sell", "quantity": "1", "limit_price": "sNaN"},
        {"security_id": sid, "side": "sell", "quantity": "1", "limit_price": "-1"},
        {"security_id": sid, "side": "sell", "quantity": "1", "limit_price": "Infinity"},
        {"security_id": sid, "side": "sell", "quantity": "1", "limit_price": "1", "min_quantity": "x"},
        {"security_id": sid, "side": "sell", "quantity": "1", "limit_price": "1", "min_quantity": "-1"},
        {"security_id": str(uuid.uuid4()), "side": "sell", "quantity": "1", "limit_price": "1"},
        {"security_id": nul, "side": nul, "quantity": nul, "limit_price": nul},
    ]
    kyc_forms = [
        {},
        {"legal_name": "A", "date_of_birth": "not-a-date", "country": "US", "tax_id_last4": "1234"},
        {"legal_name": "A", "date_of_birth": "1899-12-31", "country": "US", "tax_id_last4": "1234"},
        {"legal_name": "A", "date_of_birth": "9999-12-31", "country": "US", "tax_id_last4": "1234"},
        {"legal_name": "A" * 10_000, "date_of_birth": "1980-01-01", "country": "US", "tax_id_last4": "1234"},
        {"legal_name": "A", "date_of_birth": "1980-01-01", "country": "USA", "tax_id_last4": "12345"},
        {"legal_name": "A", "date_of_birth": "1980-01-01", "country": nul, "tax_id_last4": nul},
    ]
    failures: list[tuple[str, object, int]] = []
    async with browser(api, cookie_of(keyring, user_id)) as b:

        async def check(method: str, path: str, data: dict[str, str] | None = None) -> None:
            try:
                response = await b.request(method, path, data=data)
            except httpx.TransportError:
                failures.append((path, data, DROPPED))
                return
            if response.status_code >= 500:
                failures.append((path, data, response.status_code))

        for form in holdings_forms:
            await check("POST", "/app/holdings", form)
        for form in order_forms:
            await check("POST", "/app/orders", form)
        for form in kyc_forms:
            await check("POST", "/app/verification/kyc", form)
        for method in ("", "bogus", nul):
            await check("POST", "/app/verification/accreditation", {"method": method})
        for form in (
            {},
            {"limit_price": "abc"},
            {"limit_price": "sNaN"},
            {"limit_price": "1e999999999"},
            {"quantity": "x"},
            {"quantity": "-1"},
            {"quantity": "9" * 5000},
        ):
            await check("POST", f"/app/orders/{uuid.uuid4()}/amend", form)
        for code in ("", "abc", "9" * 10_000, nul):
            await check("POST", "/app/security/mfa/verify", {"code": code})
        for path in (
            "/app/deals/not-a-uuid",
            f"/app/deals/{uuid.uuid4()}",
            f"/app/deals/{uuid.uuid4()}/live",
            "/app/documents/not-a-uuid/content",
            f"/app/documents/{uuid.uuid4()}/content?version=bogus",
            f"/app/documents/{uuid.uuid4()}/content",
            "/app/companies/not-a-uuid",
            f"/app/companies/{uuid.uuid4()}",
            "/app/companies?q=%00",
            "/app/companies?q=" + "%25_%5C" * 100,
            "/app/companies?sector=abc%5C",
            "/app/companies?sector=%00",
        ):
            await check("GET", path)
        for path in (
            "/app/security/sessions/not-a-uuid/revoke",
            f"/app/security/sessions/{uuid.uuid4()}/revoke",
            "/app/notifications/not-a-uuid/read",
            f"/app/notifications/{uuid.uuid4()}/read",
            f"/app/orders/{uuid.uuid4()}/cancel",
            f"/app/deals/{uuid.uuid4()}/documents/not-a-uuid/sign",
        ):
            await check("POST", path)
        for data in (
            {},
            {"signature_name": "x", "consent": "yes"},
            {"signature_name": nul, "consent": "yes"},
            {"signature_name": "x", "consent": "no"},
        ):
            await check("POST", f"/app/deals/{uuid.uuid4()}/documents/{uuid.uuid4()}/sign", data)
    async with browser(api) as anonymous:
        for data in (
            {},
            {"username": nul, "password": nul},
            {"username": "x@example.com", "password": "p" * 1_000_000},
            {"username": "x" * 100_000, "password": "p"},
            {"username": "x@example.com", "challenge": "garbage", "otp": "1"},
            {"username": "x@example.com", "challenge": nul, "otp": nul},
        ):
            status, _ = await status_of(anonymous, "POST", "/app/login", data=data)
            if status >= 500:
                failures.append(("/app/login", {k: v[:20] for k, v in data.items()}, status))
        for data in (
            {},
            {"email": nul, "password": PASSWORD, "full_name": "x"},
            {"email": f"{uuid.uuid4().hex}@example.com", "password": PASSWORD, "full_name": nul},
            {"email": "x" * 400 + "@example.com", "password": PASSWORD, "full_name": "x"},
        ):
            status, _ = await status_of(anonymous, "POST", "/app/signup", data=data)
            if status >= 500:
                failures.append(("/app/signup", {k: v[:20] for k, v in data.items()}, status))
    assert failures == []
    assert await count(sessions, Holding, owner_id=user_id) == 0
    assert await count(sessions, Order, user_id=user_id) == 0


async def test_a_stranger_never_sees_or_signs_another_investors_deal_or_document(
    api: httpx.AsyncClient, sessions: SessionFactory, store: LocalObjectStore, keyring: KeyRing
) -> None:
    deal_id, seller_id, buyer_id, doc = await deal_with_document(sessions, store)
    async with browser(api, cookie_of(keyring, seller_id)) as seller:
        page = await seller.get(f"/app/deals/{deal_id}")
        assert page.status_code == 200 and str(doc.id) in page.text
        assert (await seller.get(f"/app/documents/{doc.id}/content")).content.startswith(b"%PDF")
    issuer_of_other = cookie_of(keyring, uuid.uuid4(), Role.ISSUER)
    for cookie in (cookie_of(keyring, uuid.uuid4()), issuer_of_other):
        async with browser(api, cookie) as stranger:
            for path in (f"/app/deals/{deal_id}", f"/app/deals/{deal_id}/live", f"/app/documents/{doc.id}/content"):
                response = await stranger.get(path)
                assert response.status_code == 404, (path, response.status_code)
                assert "Sally Seller" not in response.text and "%PDF" not in response.text
            signed = await stranger.post(
                f"/app/deals/{deal_id}/documents/{doc.id}/sign", data={"signature_name": "Mallory", "consent": "yes"}
            )
            assert signed.status_code in (404, 422) and "Sally Seller" not in signed.text
            # a deal the stranger cannot see, paired with a document id: still nothing
            signed = await stranger.post(
                f"/app/deals/{uuid.uuid4()}/documents/{doc.id}/sign",
                data={"signature_name": "Mallory", "consent": "yes"},
            )
            assert signed.status_code == 404
    # the buyer (a participant, but second in the signing order) cannot jump the queue through the form
    async with browser(api, cookie_of(keyring, buyer_id)) as buyer:
        early = await buyer.post(
            f"/app/deals/{deal_id}/documents/{doc.id}/sign", data={"signature_name": "Bob Buyer", "consent": "yes"}
        )
        assert early.status_code == 422 and is_html(early)
    assert await signer_status(sessions, doc.id, seller_id) == "pending"
    assert await signer_status(sessions, doc.id, buyer_id) == "pending"


async def test_the_deal_pages_poll_swaps_nothing_in_until_the_deal_changes(
    api: httpx.AsyncClient, sessions: SessionFactory, store: LocalObjectStore, keyring: KeyRing, settings: Settings
) -> None:
    """Swapping the live fragment in every 5 s wiped a signature being typed: an unchanged deal answers 204
    (htmx swaps nothing), a changed one the new fragment with its new version."""
    deal_id, seller_id, _, doc = await deal_with_document(sessions, store)

    def version_of(html: str) -> str:
        found = re.search(r'id="deal-live-version" name="v" value="([0-9a-f]+)"', html)
        assert found, "no version in the live fragment"
        return found.group(1)

    async with browser(api, cookie_of(keyring, seller_id)) as seller:
        shown = version_of((await seller.get(f"/app/deals/{deal_id}")).text)
        unchanged = await seller.get(f"/app/deals/{deal_id}/live", params={"v": shown})
        assert unchanged.status_code == 204 and unchanged.content == b""
        async with transaction(sessions) as session:
            await documents.sign_document(
                session,
                store,
                settings.state_dir / "keys",
                document_id=doc.id,
                user_id=seller_id,
                signature_name="Sally Seller",
                ctx=RequestContext(ip="10.0.0.9"),
            )
        changed = await seller.get(f"/app/deals/{deal_id}/live", params={"v": shown})
        assert changed.status_code == 200 and is_html(changed)
        assert version_of(changed.text) != shown and "seller Sally Seller: signed" in changed.text
        for stale in ("", "x" * 64):
            assert (await seller.get(f"/app/deals/{deal_id}/live", params={"v": stale})).status_code == 200
        too_long = await seller.get(f"/app/deals/{deal_id}/live", params={"v": "x" * 65})
        assert too_long.status_code == 422


async def test_an_investor_cannot_cancel_or_amend_someone_elses_order(
    api: httpx.AsyncClient, sessions: SessionFactory, token_for: TokenFor, keyring: KeyRing
) -> None:
    _, security_id = await new_security(sessions)
    _, owner = await seller_with_shares(api, token_for, security_id, 500)
    order = await place(api, owner, order_body(security_id, "sell", 100, "10.00"))
    async with browser(api, cookie_of(keyring, uuid.uuid4())) as stranger:
        for path, data in (
            (f"/app/orders/{order['id']}/cancel", None),
            (f"/app/orders/{order['id']}/amend", {"quantity": "1", "limit_price": "0.01"}),
        ):
            for hx in ({}, {"HX-Request": "true"}):
                response = await stranger.post(path, data=data, headers=hx)
                assert response.status_code == 404 and "10.00" not in response.text  # no row of theirs, no details
        listing = await stranger.get("/app/orders")
        assert order["id"] not in listing.text
    after = (await api.get(f"/v1/orders/{order['id']}", headers=owner)).json()
    assert (after["status"], after["quantity"], after["limit_price"]["amount"]) == ("open", 100, "10.0000")


async def test_sessions_and_notifications_of_another_user_are_out_of_reach(
    api: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    victim = await register_and_login(api)
    attacker = await register_and_login(api)
    victim_session = keyring_sid(victim)
    note_id = uuid.uuid4()
    async with transaction(sessions) as session:
        session.add(
            Notification(
                id=note_id,
                user_id=victim.id,
                event_id=uuid.uuid4(),
                kind="test",
                category="account",
                title="Victim secret",
                body="secret body",
            )
        )
    async with browser(api, cookie_of_user(attacker)) as b:
        revoke = await b.post(f"/app/security/sessions/{victim_session}/revoke")
        read = await b.post(f"/app/notifications/{note_id}/read")
        read_all = await b.post("/app/notifications/read-all")
        listing = await b.get("/app/notifications")
    assert (revoke.status_code, read.status_code, read_all.status_code) == (404, 404, 303)
    assert "Victim secret" not in listing.text
    async with sessions() as session:
        note = await session.get(Notification, note_id)
        assert note is not None and note.read_at is None
    async with browser(api, cookie_of_user(victim)) as b:
        assert (await b.get("/app/security")).status_code == 200  # the victim's session survived


def keyring_sid(user: TestUser) -> str:
    """The session id (`sid`) inside a user's access token (payload read without verifying: test data)."""
    import base64
    import json

    payload = user.headers["Authorization"].removeprefix("Bearer ").split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["sid"])


async def test_user_text_is_escaped_everywhere_it_is_echoed(
    api: httpx.AsyncClient, sessions: SessionFactory, keyring: KeyRing
) -> None:
    payload = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    async with browser(api) as anonymous:
        login = await anonymous.post("/app/login", data={"username": payload, "password": "x"})
        signup = await anonymous.post("/app/signup", data={"email": payload, "password": "short", "full_name": payload})
    async with browser(api, cookie_of(keyring, uuid.uuid4())) as b:
        kyc = await b.post(
            "/app/verification/kyc",
            data={"legal_name": payload, "date_of_birth": "nope", "country": payload, "tax_id_last4": payload},
        )
        holding = await b.post(
            "/app/holdings", data={"security_id": payload, "quantity": payload, "cost_basis": payload}
        )
        order = await b.post("/app/orders", data={"security_id": payload, "side": payload, "quantity": payload})
        search = await b.get("/app/companies", params={"q": payload, "sector": payload})
    for response in (login, signup, kyc, holding, order, search):
        assert response.status_code < 500
        assert "<script>alert(1)" not in response.text and "<img src=x" not in response.text, response.request.url
    assert "&lt;script&gt;alert(1)" in login.text  # echoed, escaped


async def test_login_has_no_open_redirect(api: httpx.AsyncClient) -> None:
    user = await register_and_login(api)
    async with browser(api) as b:
        for url in (
            "/app/login?next=https://evil.example/",
            "/app/login?next=//evil.example",
            "/app/login?redirect=//evil.example",
        ):
            response = await b.post(url, data={"username": user.email, "password": PASSWORD})
            assert response.status_code == 303 and response.headers["location"] == "/app"
        page = await b.get("/app/login?next=https://evil.example/")
        assert "evil.example" not in page.text


async def test_malformed_paths_unknown_pages_and_unstorable_values_are_pages_not_json(
    api: httpx.AsyncClient,
) -> None:
    user = await register_and_login(api)
    async with browser(api, cookie_of_user(user)) as b:
        for method, path, data, status in (
            ("GET", "/app/deals/not-a-uuid", None, 422),
            ("GET", "/app/no-such-page", None, 404),
            ("POST", "/app/security/sessions/not-a-uuid/revoke", {}, 422),
            ("POST", "/app/signup", {"email": "nul@example.com", "password": PASSWORD, "full_name": "A\x00B"}, 422),
        ):
            response = await b.request(method, path, data=data)
            assert response.status_code == status, (path, response.text[:300])
            assert is_html(response), (path, response.headers.get("content-type"))
            assert "<h1>" in response.text
    assert (
        (await api.get("/v1/deals/not-a-uuid", headers=user.headers))
        .headers["content-type"]
        .startswith("application/problem+json")
    )
