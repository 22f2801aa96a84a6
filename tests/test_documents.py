"""Deal documents end to end: generation, participant-only content, signing order, links, decline, PAdES sealing."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from io import BytesIO
from typing import Any

import httpx
import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from sqlalchemy import text
from sqlmodel import col, select

from models.admin import AccountFreeze
from models.base import Money
from models.deals import FrozenTransferPolicy
from models.documents import DealTerms, DocumentKind, DocumentRead, Party, RequestContext, SignatureRequest, SignerSpec
from models.platform import OutboxEvent
from pap.db import SessionFactory, transaction
from pap.settings import Settings
from pap.storage import LocalObjectStore
from services import deals, documents
from services.documents.pades import load_signing_key
from services.documents.rendering import render_document, render_text, sha256_hex
from services.identity.permissions import Role
from services.identity.tokens import Principal
from tests.market_support import new_security
from tests.support import eventually

TokenFor = Callable[..., dict[str, str]]


@dataclass
class Deal:
    terms: DealTerms
    seller: SignerSpec
    buyer: SignerSpec


def make_deal() -> Deal:
    seller_id, buyer_id = uuid.uuid4(), uuid.uuid4()
    seller_name, buyer_name = f"Sally Seller {seller_id.hex[:6]}", f"Bob Buyer {buyer_id.hex[:6]}"
    terms = DealTerms(
        deal_id=uuid.uuid4(),
        company_id=uuid.uuid4(),
        company_name="Acme",
        company_legal_name="Acme Robotics, Inc.",
        security_class="Series B Preferred",
        seller=Party(id=seller_id, name=seller_name),
        buyer=Party(id=buyer_id, name=buyer_name),
        quantity=1_000,
        price_per_share=Money(amount=Decimal("12.50")),
        total=Money(amount=Decimal("12500.00")),
        transfer_fee=Money(amount=Decimal("250.00")),
        rofr_days=30,
        date=dt.date(2026, 11, 27),
    )
    return Deal(
        terms=terms,
        seller=SignerSpec(user_id=seller_id, role="seller", name=seller_name, email="s@example.com", order=1),
        buyer=SignerSpec(user_id=buyer_id, role="buyer", name=buyer_name, email="b@example.com", order=2),
    )


@pytest.fixture
def store(settings: Settings) -> LocalObjectStore:
    """The same folder the API process reads objects from."""
    return LocalObjectStore(settings.state_dir / "objects")


async def generate(
    sessions: SessionFactory,
    store: LocalObjectStore,
    deal: Deal,
    kind: DocumentKind = DocumentKind.STOCK_TRANSFER_AGREEMENT,
) -> DocumentRead:
    async with transaction(sessions) as session:
        return await documents.generate_document(
            session,
            store,
            deal_id=deal.terms.deal_id,
            kind=kind,
            terms=deal.terms,
            signers=[deal.seller, deal.buyer],
        )


def sign_body(name: str, consent: Any = True) -> dict[str, Any]:
    return {"signature_name": name, "consent": consent}


def problem_type(response: httpx.Response) -> str:
    return str(response.json()["type"]).rsplit("/", 1)[-1]


async def test_generation_is_deterministic_and_idempotent_per_deal_and_kind(
    sessions: SessionFactory, store: LocalObjectStore
) -> None:
    deal = make_deal()
    assert sha256_hex(render_document(DocumentKind.JOINDER, deal.terms)) == sha256_hex(
        render_document(DocumentKind.JOINDER, deal.terms)
    )
    first = await generate(sessions, store, deal)
    again = await generate(sessions, store, deal)
    assert again.id == first.id
    assert again.sha256 == first.sha256
    assert first.storage_key == f"documents/{deal.terms.deal_id}/stock_transfer_agreement-{first.id}.pdf"
    assert sha256_hex(await store.get(first.storage_key)) == first.sha256
    assert first.sha256 == sha256_hex(render_document(DocumentKind.STOCK_TRANSFER_AGREEMENT, deal.terms))
    assert first.status == "awaiting_signatures"
    assert [(s.user_id, s.role, s.status) for s in first.signers] == [
        (deal.seller.user_id, "seller", "pending"),
        (deal.buyer.user_id, "buyer", "pending"),
    ]

    async with transaction(sessions) as session:
        listed = await documents.list_deal_documents(session, deal.terms.deal_id)
        generated = (
            await session.exec(
                select(OutboxEvent).where(
                    OutboxEvent.type == "documents.document.generated", col(OutboxEvent.subject) == str(first.id)
                )
            )
        ).all()
    assert [d.id for d in listed] == [first.id]
    assert listed[0].model_dump(mode="json").keys() == {"id", "kind", "sha256", "status", "signers"}
    assert len(generated) == 1
    assert generated[0].topic == "pap.documents"


async def test_content_is_served_to_participants_only(
    api: httpx.AsyncClient, sessions: SessionFactory, store: LocalObjectStore, token_for: TokenFor
) -> None:
    deal = make_deal()
    doc = await generate(sessions, store, deal)
    url = f"/v1/documents/{doc.id}/content"

    as_signer = await api.get(url, headers=token_for(deal.buyer.user_id, Role.INVESTOR))
    assert as_signer.status_code == 200
    assert as_signer.headers["content-type"] == "application/pdf"
    assert as_signer.content.startswith(b"%PDF")
    assert sha256_hex(as_signer.content) == doc.sha256

    stranger = await api.get(url, headers=token_for(uuid.uuid4(), Role.INVESTOR))
    assert stranger.status_code == 404
    other_issuer = await api.get(url, headers=token_for(uuid.uuid4(), Role.ISSUER, company_id=uuid.uuid4()))
    assert other_issuer.status_code == 404
    issuer = await api.get(url, headers=token_for(uuid.uuid4(), Role.ISSUER, company_id=deal.terms.company_id))
    assert issuer.status_code == 200
    manager = await api.get(url, headers=token_for(uuid.uuid4(), Role.DEAL_MANAGER, mfa=True))
    assert manager.status_code == 200
    assert (await api.get(url)).status_code == 401


async def test_tampered_stored_file_is_refused_as_an_integrity_conflict(
    api: httpx.AsyncClient, sessions: SessionFactory, store: LocalObjectStore, token_for: TokenFor
) -> None:
    deal = make_deal()
    doc = await generate(sessions, store, deal, DocumentKind.JOINDER)
    await store.put(doc.storage_key, b"%PDF-1.4 forged", "application/pdf")
    response = await api.get(f"/v1/documents/{doc.id}/content", headers=token_for(deal.seller.user_id, Role.INVESTOR))
    assert response.status_code == 409
    assert problem_type(response) == "document-integrity"


async def test_second_signer_cannot_sign_before_the_first(
    api: httpx.AsyncClient, sessions: SessionFactory, store: LocalObjectStore, token_for: TokenFor
) -> None:
    deal = make_deal()
    doc = await generate(sessions, store, deal)
    response = await api.post(
        f"/v1/documents/{doc.id}/sign",
        json=sign_body(deal.buyer.name),
        headers=token_for(deal.buyer.user_id, Role.INVESTOR),
    )
    assert response.status_code == 409
    assert problem_type(response) == "not-your-turn"

    first = await api.post(
        f"/v1/documents/{doc.id}/sign",
        json=sign_body(deal.seller.name),
        headers=token_for(deal.seller.user_id, Role.INVESTOR),
    )
    assert first.status_code == 200
    statuses = {s["user_id"]: s["status"] for s in first.json()["signers"]}
    assert statuses == {str(deal.seller.user_id): "signed", str(deal.buyer.user_id): "pending"}
    assert first.json()["status"] == "awaiting_signatures"

    outsider = await api.post(
        f"/v1/documents/{doc.id}/sign", json=sign_body("Nobody"), headers=token_for(uuid.uuid4(), Role.INVESTOR)
    )
    assert outsider.status_code == 404


async def test_signing_needs_literal_consent_and_a_signature_name(
    api: httpx.AsyncClient, sessions: SessionFactory, store: LocalObjectStore, token_for: TokenFor
) -> None:
    deal = make_deal()
    doc = await generate(sessions, store, deal)
    headers = token_for(deal.seller.user_id, Role.INVESTOR)
    no_consent = await api.post(
        f"/v1/documents/{doc.id}/sign", json=sign_body(deal.seller.name, False), headers=headers
    )
    assert no_consent.status_code == 422
    assert any(e["field"] == "consent" for e in no_consent.json()["errors"])
    truthy = await api.post(f"/v1/documents/{doc.id}/sign", json=sign_body(deal.seller.name, "yes"), headers=headers)
    assert truthy.status_code == 422
    blank = await api.post(f"/v1/documents/{doc.id}/sign", json=sign_body("   "), headers=headers)
    assert blank.status_code == 422
    assert any(e["field"] == "signature_name" for e in blank.json()["errors"])


async def test_signing_link_signs_once_without_a_bearer_token(
    api: httpx.AsyncClient, sessions: SessionFactory, store: LocalObjectStore
) -> None:
    deal = make_deal()
    doc = await generate(sessions, store, deal)
    async with transaction(sessions) as session:
        token = await documents.create_signing_link(session, doc.id, deal.seller.user_id)

    view = await api.get(f"/v1/sign/{token}")
    assert view.status_code == 200
    assert view.json()["your_turn"] is True
    assert view.json()["sha256"] == doc.sha256
    content = await api.get(view.json()["content_url"])
    assert content.content.startswith(b"%PDF")

    signed = await api.post(f"/v1/sign/{token}", json=sign_body(deal.seller.name))
    assert signed.status_code == 200
    assert {s["user_id"]: s["status"] for s in signed.json()["signers"]}[str(deal.seller.user_id)] == "signed"

    reused = await api.post(f"/v1/sign/{token}", json=sign_body(deal.seller.name))
    assert reused.status_code == 410
    assert problem_type(reused) == "signing-link-gone"
    assert (await api.get(f"/v1/sign/{'x' * 43}")).status_code == 404


async def test_expired_signing_link_is_refused(sessions: SessionFactory, store: LocalObjectStore) -> None:
    deal = make_deal()
    doc = await generate(sessions, store, deal)
    async with transaction(sessions) as session:
        token = await documents.create_signing_link(session, doc.id, deal.seller.user_id, ttl=dt.timedelta(seconds=-1))
    async with transaction(sessions) as session:
        with pytest.raises(documents.SigningLinkGone):
            await documents.view_signing_link(session, token, RequestContext())


async def test_decline_closes_the_envelope_as_declined(
    api: httpx.AsyncClient, sessions: SessionFactory, store: LocalObjectStore, token_for: TokenFor
) -> None:
    deal = make_deal()
    doc = await generate(sessions, store, deal)
    response = await api.post(
        f"/v1/documents/{doc.id}/decline",
        json={"reason": "price changed"},
        headers=token_for(deal.seller.user_id, Role.INVESTOR),
    )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "declined"
    assert {s["user_id"]: s["status"] for s in body["signers"]} == {
        str(deal.seller.user_id): "declined",
        str(deal.buyer.user_id): "voided",
    }
    late = await api.post(
        f"/v1/documents/{doc.id}/sign",
        json=sign_body(deal.buyer.name),
        headers=token_for(deal.buyer.user_id, Role.INVESTOR),
    )
    assert late.status_code == 409


async def test_reminder_and_void_are_recorded_and_void_is_idempotent(
    sessions: SessionFactory, store: LocalObjectStore
) -> None:
    deal = make_deal()
    doc = await generate(sessions, store, deal)
    async with transaction(sessions) as session:
        reminded = await documents.send_reminder(session, doc.id)
    assert reminded == [deal.seller.user_id]  # only the signer whose turn it is
    async with transaction(sessions) as session:
        voided = await documents.void_signature_requests(session, doc.id, "deal cancelled")
    async with transaction(sessions) as session:
        again = await documents.void_signature_requests(session, doc.id, "deal cancelled")
        trail = await documents.signature_events(session, doc.id)
        nothing_due = await documents.send_reminder(session, doc.id)
    assert voided.status == again.status == "voided"
    assert {s.status for s in again.signers} == {"voided"}
    assert [str(e.kind) for e in trail].count("voided") == 1
    assert [str(e.kind) for e in trail].count("reminded") == 1
    assert nothing_due == []


async def test_a_retried_reminder_step_reminds_nobody_twice(sessions: SessionFactory, store: LocalObjectStore) -> None:
    deal = make_deal()
    doc = await generate(sessions, store, deal)
    for expected in ([deal.seller.user_id], []):  # the step's first attempt committed; its retry runs again
        async with transaction(sessions) as session:
            assert await documents.send_reminder(session, doc.id) == expected
    async with transaction(sessions) as session:
        trail = await documents.signature_events(session, doc.id)
    assert [str(e.kind) for e in trail].count("reminded") == 1


async def test_fully_signed_document_is_sealed_with_a_certificate_page_and_a_valid_pades_signature(
    api: httpx.AsyncClient,
    sessions: SessionFactory,
    store: LocalObjectStore,
    token_for: TokenFor,
    settings: Settings,
) -> None:
    deal = make_deal()
    doc = await generate(sessions, store, deal)
    for signer in (deal.seller, deal.buyer):
        response = await api.post(
            f"/v1/documents/{doc.id}/sign",
            json=sign_body(signer.name.upper()),
            headers={**token_for(signer.user_id, Role.INVESTOR), "User-Agent": f"pap-test/{signer.role}"},
        )
        assert response.status_code == 200, response.text
    assert response.json()["status"] == "signed"

    meta = await api.get(f"/v1/documents/{doc.id}", headers=token_for(deal.buyer.user_id, Role.INVESTOR))
    assert meta.json()["status"] == "signed"
    signed = await api.get(
        f"/v1/documents/{doc.id}/content",
        params={"version": "signed"},
        headers=token_for(deal.seller.user_id, Role.INVESTOR),
    )
    assert signed.status_code == 200
    assert sha256_hex(signed.content) == meta.json()["signed_sha256"]
    original = await store.get(doc.storage_key)
    assert signed.content.startswith(original)  # the certificate and seal are incremental updates

    def pages(data: bytes) -> int:
        return int(PdfFileReader(BytesIO(data)).root["/Pages"]["/Count"])

    assert pages(signed.content) == pages(original) + 1
    reader = PdfFileReader(BytesIO(signed.content))
    assert len(reader.embedded_signatures) == 1
    platform_cert = load_signing_key(settings.state_dir / "keys").certificate
    status = await async_validate_pdf_signature(
        reader.embedded_signatures[0], ValidationContext(trust_roots=[platform_cert])
    )
    assert status.intact
    assert status.valid
    assert status.trusted

    trail = (
        await api.get(f"/v1/documents/{doc.id}/events", headers=token_for(deal.seller.user_id, Role.INVESTOR))
    ).json()
    signatures = [e for e in trail if e["kind"] == "signed"]
    assert [e["actor_id"] for e in signatures] == [str(deal.seller.user_id), str(deal.buyer.user_id)]
    for event, signer in zip(signatures, (deal.seller, deal.buyer), strict=True):
        assert event["ip"] == "127.0.0.1"
        assert event["user_agent"] == f"pap-test/{signer.role}"
        assert event["document_sha256"] == doc.sha256
        assert event["detail"]["name_matches"] is True
    assert [e["kind"] for e in trail].count("sent") == 2

    async with transaction(sessions) as session:
        sealed = (
            await session.exec(
                select(OutboxEvent).where(
                    OutboxEvent.type == "documents.document.signed", col(OutboxEvent.subject) == str(doc.id)
                )
            )
        ).all()
    assert len(sealed) == 1
    assert sealed[0].data["deal_id"] == str(deal.terms.deal_id)
    assert sealed[0].data["kind"] == "stock_transfer_agreement"


async def _waiting_on_a_lock(sessions: SessionFactory) -> bool:
    async with transaction(sessions) as session:
        waiting = await session.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
        )
        return int(waiting.scalar_one()) > 0


async def test_a_signer_racing_link_and_account_signs_once_and_the_other_signer_is_still_needed(
    sessions: SessionFactory, store: LocalObjectStore, settings: Settings
) -> None:
    deal = make_deal()
    both_first = deal.seller.model_copy(update={"order": 1}), deal.buyer.model_copy(update={"order": 1})
    async with transaction(sessions) as session:
        doc = await documents.generate_document(
            session,
            store,
            deal_id=deal.terms.deal_id,
            kind=DocumentKind.STOCK_TRANSFER_NOTICE,
            terms=deal.terms,
            signers=list(both_first),
        )
        token = await documents.create_signing_link(session, doc.id, deal.seller.user_id)
    keys = settings.state_dir / "keys"

    async def sign_by_link() -> None:
        async with transaction(sessions) as session:
            await documents.sign_with_link(
                session, store, keys, token=token, signature_name=deal.seller.name, ctx=RequestContext(ip="10.0.0.2")
            )

    async with transaction(sessions) as session:  # the account signature holds the document's lock...
        first = await documents.sign_document(
            session,
            store,
            keys,
            document_id=doc.id,
            user_id=deal.seller.user_id,
            signature_name=deal.seller.name,
            ctx=RequestContext(ip="10.0.0.1"),
        )
        by_link = asyncio.create_task(sign_by_link())
        await eventually(lambda: _waiting_on_a_lock(sessions), what="the link signature waiting on the lock")
    with pytest.raises(documents.SigningLinkGone):  # ...and the link, let in after it, finds it signed
        await by_link

    assert first.signal.completed is False
    async with transaction(sessions) as session:
        requests = (await session.exec(select(SignatureRequest).where(SignatureRequest.document_id == doc.id))).all()
        trail = await documents.signature_events(session, doc.id)
    signers = {r.role: r.status for r in requests}
    assert signers == {"seller": "signed", "buyer": "pending"}
    assert [str(e.kind) for e in trail].count("signed") == 1


async def test_a_sign_form_submitted_twice_signs_once(
    sessions: SessionFactory, store: LocalObjectStore, settings: Settings
) -> None:
    """The app reads the document (and its signers) before signing, in the same transaction: a second
    submit that read it before the first committed must find the signature, not its stale copy."""
    deal = make_deal()
    doc = await generate(sessions, store, deal)
    seller = Principal(user_id=deal.seller.user_id, roles=frozenset({Role.INVESTOR}), mfa=False)

    async def sign(session: Any) -> None:
        await documents.sign_document(
            session,
            store,
            settings.state_dir / "keys",
            document_id=doc.id,
            user_id=deal.seller.user_id,
            signature_name=deal.seller.name,
            ctx=RequestContext(ip="10.0.0.3"),
        )

    async with transaction(sessions) as second:
        await documents.get_document(second, seller, doc.id)  # the second submit reads the document...
        async with transaction(sessions) as first:  # ...while the first signs and commits
            await sign(first)
        with pytest.raises(documents.AlreadySigned):
            await sign(second)
    async with transaction(sessions) as session:
        trail = await documents.signature_events(session, doc.id)
    assert [str(e.kind) for e in trail].count("signed") == 1


async def test_a_frozen_account_cannot_sign(
    api: httpx.AsyncClient, sessions: SessionFactory, store: LocalObjectStore, token_for: TokenFor
) -> None:
    """Compliance froze the seller (their deals are held): a signature is a legal act they may not take now."""
    deal = make_deal()
    doc = await generate(sessions, store, deal)
    async with transaction(sessions) as session:
        session.add(AccountFreeze(user_id=deal.seller.user_id, reason="sanctions screening hit"))
    seller = token_for(deal.seller.user_id, Role.INVESTOR)

    refused = await api.post(f"/v1/documents/{doc.id}/sign", json=sign_body(deal.seller.name), headers=seller)

    assert refused.status_code == 403 and problem_type(refused) == "account-frozen", refused.text
    async with transaction(sessions) as session:
        trail = await documents.signature_events(session, doc.id)
    assert "signed" not in [str(e.kind) for e in trail]


async def test_a_signing_link_opens_nothing_once_the_envelope_is_voided_or_declined(
    api: httpx.AsyncClient, sessions: SessionFactory, store: LocalObjectStore, token_for: TokenFor
) -> None:
    voided, declined = make_deal(), make_deal()
    links = []
    for deal in (voided, declined):
        doc = await generate(sessions, store, deal)
        async with transaction(sessions) as session:
            links.append(await documents.create_signing_link(session, doc.id, deal.buyer.user_id))
        if deal is voided:
            async with transaction(sessions) as session:
                await documents.void_signature_requests(session, doc.id, "deal cancelled")
        else:
            seller = token_for(deal.seller.user_id, Role.INVESTOR)
            refused = await api.post(f"/v1/documents/{doc.id}/decline", json={"reason": "no"}, headers=seller)
            assert refused.status_code == 200, refused.text

    for token in links:
        for path in (f"/v1/sign/{token}", f"/v1/sign/{token}/content"):
            response = await api.get(path)
            assert response.status_code == 410 and problem_type(response) == "signing-link-gone", path


async def test_the_deals_buyer_and_seller_read_the_documents_they_do_not_sign(
    api: httpx.AsyncClient, sessions: SessionFactory, store: LocalObjectStore, token_for: TokenFor
) -> None:
    deal = make_deal()
    company_id, security_id = await new_security(sessions)
    async with transaction(sessions) as session:
        await deals.create_deal(
            session,
            deal_id=deal.terms.deal_id,
            security_id=security_id,
            company_id=company_id,
            seller_id=deal.seller.user_id,
            buyer_id=deal.buyer.user_id,
            quantity=deal.terms.quantity,
            price=deal.terms.price_per_share,
            source="brokered",
            policy=FrozenTransferPolicy(),
            reservation_reference=f"deal:{deal.terms.deal_id}",
        )
        consent = await documents.generate_document(
            session, store, deal_id=deal.terms.deal_id, kind=DocumentKind.ISSUER_CONSENT, terms=deal.terms, signers=[]
        )

    for party in (deal.buyer.user_id, deal.seller.user_id):
        response = await api.get(f"/v1/documents/{consent.id}/content", headers=token_for(party, Role.INVESTOR))
        assert response.status_code == 200 and response.content.startswith(b"%PDF")
    stranger = await api.get(f"/v1/documents/{consent.id}/content", headers=token_for(uuid.uuid4(), Role.INVESTOR))
    assert stranger.status_code == 404


async def test_a_browser_with_a_very_long_user_agent_can_sign(
    api: httpx.AsyncClient, sessions: SessionFactory, store: LocalObjectStore, token_for: TokenFor
) -> None:
    deal = make_deal()
    doc = await generate(sessions, store, deal)
    seller = {**token_for(deal.seller.user_id, Role.INVESTOR), "User-Agent": "Mozilla/5.0 " + "x" * 600}

    signed = await api.post(f"/v1/documents/{doc.id}/sign", json=sign_body(deal.seller.name), headers=seller)

    assert signed.status_code == 200, signed.text
    async with transaction(sessions) as session:
        trail = await documents.signature_events(session, doc.id)
    assert [len(e.user_agent or "") for e in trail if e.kind == "signed"] == [512]


def test_documents_state_the_exact_price_the_escrow_collects() -> None:
    deal = make_deal()
    price = Money(amount=Decimal("10.0005"))
    terms = deal.terms.model_copy(
        update={"price_per_share": price, "quantity": 3, "total": Money(amount=Decimal("30.0015"))}
    )

    text_of_pdf = render_text(DocumentKind.STOCK_TRANSFER_AGREEMENT, terms)

    assert "USD 10.0005" in text_of_pdf and "USD 30.0015" in text_of_pdf
