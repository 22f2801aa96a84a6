"""Signing, declining, reminding and voiding: the built-in e-signature flow with signing order and audit trail.

Every action locks the document row, so the last two signers signing at the same
moment still complete the envelope exactly once.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from events import topics
from events.outbox import record_event
from models.base import utcnow
from models.documents import (
    Document,
    DocumentDeclined,
    DocumentKind,
    DocumentRead,
    DocumentSigned,
    DocumentStatus,
    RequestContext,
    SignatureEvent,
    SignatureEventKind,
    SignatureRequest,
    SignerStatus,
    SigningLinkView,
    SigningToken,
    SignResult,
)
from pap.storage import ObjectStore
from services import admin
from services.deals.changes import announce
from services.documents.completion import complete_document
from services.documents.documents import (
    SOURCE,
    document_read,
    emit_document_event,
    load_document,
    signer_read,
    signers_of,
)
from services.documents.errors import (
    AlreadySigned,
    DocumentNotFound,
    DocumentNotSignable,
    NotYourTurn,
    SigningLinkGone,
)
from services.documents.provider import pending_requests, provider_for

SIGNATURE_REMINDER = "documents.signature.reminder"
SIGNATURE_DECLINED = "documents.signature.declined"
SIGNATURE_SIGNED = "documents.signature.signed"
DOCUMENT_VOIDED = "documents.document.voided"
SIGNING_LINK_TTL = timedelta(days=7)


@dataclass(frozen=True)
class SignOutcome:
    result: SignResult
    signal: DocumentSigned


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _names_match(signature_name: str, name: str) -> bool:
    return " ".join(signature_name.split()).casefold() == " ".join(name.split()).casefold()


async def _request_of(session: AsyncSession, document: Document, user_id: uuid.UUID) -> SignatureRequest:
    query = select(SignatureRequest).where(
        SignatureRequest.document_id == document.id, SignatureRequest.user_id == user_id
    )
    # Read after the document's lock: a copy loaded earlier in the session may predate a signature.
    request = (await session.exec(query.execution_options(populate_existing=True))).first()
    if request is None:
        raise DocumentNotFound(f"document {document.id} does not exist")
    return request


def _check_signable(document: Document, request: SignatureRequest, pending: list[SignatureRequest]) -> None:
    if request.status == SignerStatus.SIGNED:
        raise AlreadySigned("You have already signed this document.")
    if document.status != DocumentStatus.AWAITING_SIGNATURES or request.status != SignerStatus.PENDING:
        raise DocumentNotSignable(f"The document is {document.status}.")
    earlier = [r for r in pending if r.signing_order < request.signing_order]
    if earlier:
        raise NotYourTurn(
            "Signers earlier in the signing order have not signed yet.",
            waiting_for=[str(r.user_id) for r in earlier],
        )


async def _sign(
    session: AsyncSession,
    store: ObjectStore,
    keys_dir: Path,
    document: Document,
    request: SignatureRequest,
    signature_name: str,
    ctx: RequestContext,
    via: str,
) -> SignOutcome:
    """Record one signature. The caller holds the document's row lock (signatures go one at a time) and
    read `request` after taking it, so its status is what whoever held the lock before committed."""
    pending = await pending_requests(session, document.id)
    _check_signable(document, request, pending)
    await admin.ensure_not_frozen(session, request.user_id)  # a frozen account's deals are held: no legal acts
    now = utcnow()
    request.status = SignerStatus.SIGNED
    request.signature_name = signature_name
    request.signed_at = now
    request.signed_ip = ctx.ip
    session.add(request)
    session.add(
        SignatureEvent(
            document_id=document.id,
            signature_request_id=request.id,
            actor_id=request.user_id,
            kind=SignatureEventKind.SIGNED,
            ip=ctx.ip,
            user_agent=ctx.user_agent,
            document_sha256=document.sha256,
            at=now,
            detail={
                "signature_name": signature_name,
                "name_matches": _names_match(signature_name, request.name),
                "consent": True,
                "via": via,
            },
        )
    )
    await session.flush()
    await announce(session, document.deal_id)
    await record_event(
        session,
        topic=topics.DOCUMENTS,
        key=str(document.deal_id),
        type=SIGNATURE_SIGNED,
        source=SOURCE,
        subject=str(document.id),
        data={"document_id": str(document.id), "deal_id": str(document.deal_id), "signer_id": str(request.user_id)},
    )
    completed = not await pending_requests(session, document.id)
    if completed:
        await complete_document(session, store, keys_dir, document)
    signers = await signers_of(session, document.id)
    return SignOutcome(
        result=SignResult(
            document_id=document.id,
            status=DocumentStatus(document.status),
            signers=[signer_read(s) for s in signers],
        ),
        signal=DocumentSigned(
            document_id=document.id,
            deal_id=document.deal_id,
            kind=DocumentKind(document.kind),
            signer_id=request.user_id,
            completed=completed,
        ),
    )


async def sign_document(
    session: AsyncSession,
    store: ObjectStore,
    keys_dir: Path,
    *,
    document_id: uuid.UUID,
    user_id: uuid.UUID,
    signature_name: str,
    ctx: RequestContext,
) -> SignOutcome:
    """An authenticated signer signs; the last signature seals the executed PDF."""
    document = await load_document(session, document_id, for_update=True)
    request = await _request_of(session, document, user_id)
    return await _sign(session, store, keys_dir, document, request, signature_name, ctx, via="account")


async def create_signing_link(
    session: AsyncSession, document_id: uuid.UUID, user_id: uuid.UUID, *, ttl: timedelta = SIGNING_LINK_TTL
) -> str:
    """A one-time signing token for one signer (only its hash is stored); put it in the email link."""
    document = await load_document(session, document_id)
    request = await _request_of(session, document, user_id)
    if request.status != SignerStatus.PENDING:
        raise DocumentNotSignable("This signer has nothing left to sign.")
    token = secrets.token_urlsafe(32)
    session.add(SigningToken(signature_request_id=request.id, token_hash=_hash_token(token), expires_at=utcnow() + ttl))
    await session.flush()
    return token


async def _token_target(
    session: AsyncSession, token: str, *, for_update: bool
) -> tuple[SigningToken, Document, SignatureRequest]:
    query = select(SigningToken).where(SigningToken.token_hash == _hash_token(token))
    rows = await session.exec(query.with_for_update() if for_update else query)
    link = rows.first()
    if link is None:
        raise DocumentNotFound("This signing link does not exist.")
    if link.used_at is not None:
        raise SigningLinkGone("This signing link was already used.")
    if link.expires_at <= utcnow():
        raise SigningLinkGone("This signing link has expired.")
    request = await session.get(SignatureRequest, link.signature_request_id)
    if request is None:  # pragma: no cover - foreign key
        raise DocumentNotFound("This signing link does not exist.")
    document = await load_document(session, request.document_id, for_update=for_update)
    await session.refresh(request)
    if request.status != SignerStatus.PENDING or document.status != DocumentStatus.AWAITING_SIGNATURES:
        # Signed (by account), declined or voided: the link is no longer a way into the document.
        raise SigningLinkGone(f"This signing link no longer applies: the document is {document.status}.")
    return link, document, request


async def view_signing_link(session: AsyncSession, token: str, ctx: RequestContext) -> SigningLinkView:
    """What the link's holder is asked to sign; records a `viewed` event."""
    link, document, request = await _token_target(session, token, for_update=False)
    pending = await pending_requests(session, document.id)
    session.add(
        SignatureEvent(
            document_id=document.id,
            signature_request_id=request.id,
            actor_id=request.user_id,
            kind=SignatureEventKind.VIEWED,
            ip=ctx.ip,
            user_agent=ctx.user_agent,
            document_sha256=document.sha256,
            detail={"via": "link"},
        )
    )
    return SigningLinkView(
        document_id=document.id,
        kind=DocumentKind(document.kind),
        sha256=document.sha256,
        signer_name=request.name,
        role=request.role,
        your_turn=request.status == SignerStatus.PENDING
        and not any(r.signing_order < request.signing_order for r in pending),
        content_url=f"/v1/sign/{token}/content",
        expires_at=link.expires_at,
    )


async def signing_link_document(session: AsyncSession, token: str) -> Document:
    """The document a still-valid link points at (for showing its content)."""
    _, document, _ = await _token_target(session, token, for_update=False)
    return document


async def sign_with_link(
    session: AsyncSession,
    store: ObjectStore,
    keys_dir: Path,
    *,
    token: str,
    signature_name: str,
    ctx: RequestContext,
) -> SignOutcome:
    """Sign through an emailed link, without a bearer token; the link works once."""
    link, document, request = await _token_target(session, token, for_update=True)
    outcome = await _sign(session, store, keys_dir, document, request, signature_name, ctx, via="link")
    link.used_at = utcnow()
    session.add(link)
    return outcome


async def decline_document(
    session: AsyncSession,
    *,
    document_id: uuid.UUID,
    user_id: uuid.UUID,
    reason: str,
    ctx: RequestContext,
) -> DocumentDeclined:
    """A signer refuses: the envelope is declined and the other requests are voided."""
    document = await load_document(session, document_id, for_update=True)
    request = await _request_of(session, document, user_id)
    if request.status == SignerStatus.SIGNED:
        raise AlreadySigned("You have already signed this document.")
    if document.status != DocumentStatus.AWAITING_SIGNATURES:
        raise DocumentNotSignable(f"The document is {document.status}.")
    request.status = SignerStatus.DECLINED
    session.add(request)
    session.add(
        SignatureEvent(
            document_id=document.id,
            signature_request_id=request.id,
            actor_id=user_id,
            kind=SignatureEventKind.DECLINED,
            ip=ctx.ip,
            user_agent=ctx.user_agent,
            document_sha256=document.sha256,
            detail={"reason": reason},
        )
    )
    await session.flush()
    for other in await pending_requests(session, document.id):
        other.status = SignerStatus.VOIDED
        session.add(other)
    document.status = DocumentStatus.DECLINED
    document.status_reason = reason
    document.completed_at = utcnow()
    session.add(document)
    await emit_document_event(session, document, SIGNATURE_DECLINED, signer_id=str(user_id), reason=reason)
    return DocumentDeclined(document_id=document.id, deal_id=document.deal_id, signer_id=user_id, reason=reason)


async def send_reminder(session: AsyncSession, document_id: uuid.UUID) -> list[uuid.UUID]:
    """Remind the signers whose turn it is (workflow timer); returns their ids, empty when nothing is due."""
    document = await load_document(session, document_id, for_update=True)
    if document.status != DocumentStatus.AWAITING_SIGNATURES:
        return []
    due = await provider_for(document.provider).remind(session, document)
    if due:
        await emit_document_event(
            session,
            document,
            SIGNATURE_REMINDER,
            signers=[{"user_id": str(r.user_id), "email": r.email, "name": r.name} for r in due],
        )
    return [r.user_id for r in due]


async def void_signature_requests(session: AsyncSession, document_id: uuid.UUID, reason: str) -> DocumentRead:
    """Compensation: cancel the envelope; idempotent (a voided or declined envelope stays as it is)."""
    document = await load_document(session, document_id, for_update=True)
    if document.status in (DocumentStatus.GENERATED, DocumentStatus.AWAITING_SIGNATURES, DocumentStatus.SIGNED):
        await provider_for(document.provider).void_envelope(session, document, reason)
        document.status = DocumentStatus.VOIDED
        document.status_reason = reason
        document.completed_at = document.completed_at or utcnow()
        session.add(document)
        await emit_document_event(session, document, DOCUMENT_VOIDED, reason=reason)
        await session.flush()
    return document_read(document, await signers_of(session, document.id))
