"""Generating deal documents, reading them back (participants only, integrity-checked) and listing them."""

from __future__ import annotations

import uuid
from typing import Any, Literal

import structlog
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from events import topics
from events.outbox import record_event
from models.documents import (
    DealTerms,
    Document,
    DocumentKind,
    DocumentRead,
    DocumentStatus,
    DocumentSummary,
    SignatureEvent,
    SignatureEventKind,
    SignatureEventRead,
    SignatureRequest,
    SignerRead,
    SignerSpec,
    SignerStatus,
)
from pap.db import lock_for_transaction
from pap.storage import ObjectNotFound, ObjectStore
from services import deals
from services.deals.changes import announce
from services.documents.errors import DocumentIntegrityError, DocumentNotFound
from services.documents.provider import provider_for
from services.documents.rendering import page_count, render_document, sha256_hex
from services.errors import InvalidInput, NotFound
from services.identity.permissions import Role
from services.identity.tokens import Principal

log = structlog.get_logger(__name__)

SOURCE = "/pap/documents"
DOCUMENT_GENERATED = "documents.document.generated"
PDF = "application/pdf"


def storage_key(deal_id: uuid.UUID, kind: DocumentKind, document_id: uuid.UUID, *, signed: bool = False) -> str:
    suffix = "-signed" if signed else ""
    return f"documents/{deal_id}/{kind.value}-{document_id}{suffix}.pdf"


async def emit_document_event(session: AsyncSession, document: Document, type_: str, **data: Any) -> None:
    """One `pap.documents` event about `document` (keyed by its deal), with its ids, kind and `data`."""
    await announce(session, document.deal_id)  # the deal's documents changed: wake its long polls
    await record_event(
        session,
        topic=topics.DOCUMENTS,
        key=str(document.deal_id),
        type=type_,
        source=SOURCE,
        subject=str(document.id),
        data={"document_id": str(document.id), "deal_id": str(document.deal_id), "kind": document.kind, **data},
    )


async def signers_of(session: AsyncSession, document_id: uuid.UUID) -> list[SignatureRequest]:
    rows = await session.exec(
        select(SignatureRequest)
        .where(SignatureRequest.document_id == document_id)
        .order_by(col(SignatureRequest.signing_order), col(SignatureRequest.created_at))
    )
    return list(rows.all())


def signer_read(request: SignatureRequest) -> SignerRead:
    return SignerRead(
        user_id=request.user_id,
        role=request.role,
        status=SignerStatus(request.status),
        name=request.name,
        order=request.signing_order,
        signed_at=request.signed_at,
    )


def summary(document: Document, signers: list[SignatureRequest]) -> DocumentSummary:
    return DocumentSummary(
        id=document.id,
        kind=DocumentKind(document.kind),
        sha256=document.sha256,
        status=DocumentStatus(document.status),
        signers=[signer_read(s) for s in signers],
    )


def document_read(document: Document, signers: list[SignatureRequest]) -> DocumentRead:
    return DocumentRead(
        **summary(document, signers).model_dump(),
        deal_id=document.deal_id,
        company_id=document.company_id,
        storage_key=document.storage_key,
        page_count=document.page_count,
        signed_sha256=document.signed_sha256,
        created_at=document.created_at,
        completed_at=document.completed_at,
    )


async def _find(session: AsyncSession, deal_id: uuid.UUID, kind: DocumentKind) -> Document | None:
    """The deal's live document of this kind; a voided one (e.g. for a buyer who defaulted) is replaced."""
    rows = await session.exec(
        select(Document).where(
            Document.deal_id == deal_id,
            Document.kind == kind.value,
            Document.status != DocumentStatus.VOIDED.value,
        )
    )
    return rows.first()


async def generate_document(
    session: AsyncSession,
    store: ObjectStore,
    *,
    deal_id: uuid.UUID,
    kind: DocumentKind,
    terms: DealTerms,
    signers: list[SignerSpec],
    provider: str = "builtin",
) -> DocumentRead:
    """Render, store and record one deal document and send it for signature; idempotent per (deal, kind)."""
    if terms.deal_id != deal_id:
        raise InvalidInput("The terms belong to another deal.", errors=[{"field": "terms.deal_id"}])
    if len({s.user_id for s in signers}) != len(signers):
        raise InvalidInput("A signer appears twice.", errors=[{"field": "signers"}])
    # Serialise concurrent generations of the same (deal, kind): the second one finds the first.
    await lock_for_transaction(session, f"documents:{deal_id}:{kind.value}")
    existing = await _find(session, deal_id, kind)
    if existing is not None:
        return document_read(existing, await signers_of(session, existing.id))

    data = render_document(kind, terms)
    document_id = uuid.uuid4()
    key = storage_key(deal_id, kind, document_id)
    await store.put(key, data, PDF)
    document = Document(
        id=document_id,
        deal_id=deal_id,
        company_id=terms.company_id,
        kind=kind.value,
        sha256=sha256_hex(data),
        storage_key=key,
        page_count=page_count(data),
        provider=provider,
    )
    session.add(document)
    await session.flush()
    if signers:
        document.envelope_ref = await provider_for(provider).create_envelope(session, document, signers)
        document.status = DocumentStatus.AWAITING_SIGNATURES
        session.add(document)
        await session.flush()
    await announce(session, deal_id)
    await record_event(
        session,
        topic=topics.DOCUMENTS,
        key=str(deal_id),
        type=DOCUMENT_GENERATED,
        source=SOURCE,
        subject=str(document.id),
        data={
            "document_id": str(document.id),
            "deal_id": str(deal_id),
            "kind": kind.value,
            "sha256": document.sha256,
            "status": document.status,
            "signers": [{"user_id": str(s.user_id), "role": s.role, "order": s.order} for s in signers],
        },
    )
    return document_read(document, await signers_of(session, document.id))


async def load_document(session: AsyncSession, document_id: uuid.UUID, *, for_update: bool = False) -> Document:
    # Locking re-reads the row: a copy loaded earlier in this session may predate a concurrent signature.
    document = await session.get(Document, document_id, with_for_update=for_update, populate_existing=for_update)
    if document is None:
        raise DocumentNotFound(f"document {document_id} does not exist")
    return document


async def may_read(
    session: AsyncSession, principal: Principal, document: Document, signers: list[SignatureRequest]
) -> bool:
    """A document's readers, and everyone who may see its deal (its current buyer and seller read the
    documents they are not asked to sign, such as the issuer's consent) while it is not voided: a voided
    one may be a replaced buyer's, with that buyer's name in it and their signing trail."""
    if may_view(principal, document, signers):
        return True
    if document.status == DocumentStatus.VOIDED:
        return False
    try:
        await deals.deal_for_viewer(session, document.deal_id, principal)
    except NotFound:
        return False
    return True


def may_view(principal: Principal, document: Document, signers: list[SignatureRequest]) -> bool:
    """Signers, deal managers and compliance (with MFA), and the issuer of the deal's company."""
    if any(s.user_id == principal.user_id for s in signers):
        return True
    if principal.has_role(Role.DEAL_MANAGER, Role.COMPLIANCE) and principal.mfa:
        return True
    return (
        principal.has_role(Role.ISSUER)
        and principal.company_id is not None
        and principal.company_id == document.company_id
    )


async def get_document(session: AsyncSession, principal: Principal, document_id: uuid.UUID) -> DocumentRead:
    document = await load_document(session, document_id)
    signers = await signers_of(session, document.id)
    if not await may_read(session, principal, document, signers):
        raise DocumentNotFound(f"document {document_id} does not exist")
    return document_read(document, signers)


async def read_verified(store: ObjectStore, key: str, expected_sha256: str, document_id: uuid.UUID) -> bytes:
    """The stored bytes, refused when they no longer hash to what was recorded."""
    try:
        data = await store.get(key)
    except ObjectNotFound:
        log.error("document object missing", document_id=str(document_id), key=key)
        raise DocumentIntegrityError(f"The stored file of document {document_id} is missing.") from None
    actual = sha256_hex(data)
    if actual != expected_sha256:
        log.error(
            "document integrity check failed",
            document_id=str(document_id),
            key=key,
            expected=expected_sha256,
            actual=actual,
        )
        raise DocumentIntegrityError(f"The stored file of document {document_id} does not match its SHA-256.")
    return data


async def read_content(
    session: AsyncSession,
    store: ObjectStore,
    principal: Principal,
    document_id: uuid.UUID,
    version: Literal["original", "signed"] = "original",
) -> bytes:
    """The PDF for a participant; everybody else learns nothing (404)."""
    document = await load_document(session, document_id)
    signers = await signers_of(session, document.id)
    if not await may_read(session, principal, document, signers):
        raise DocumentNotFound(f"document {document_id} does not exist")
    return await document_bytes(store, document, version)


async def document_bytes(store: ObjectStore, document: Document, version: Literal["original", "signed"]) -> bytes:
    if version == "signed":
        if document.signed_storage_key is None or document.signed_sha256 is None:
            raise DocumentNotFound(f"document {document.id} has no signed version yet")
        return await read_verified(store, document.signed_storage_key, document.signed_sha256, document.id)
    return await read_verified(store, document.storage_key, document.sha256, document.id)


async def list_deal_documents(
    session: AsyncSession, deal_id: uuid.UUID, viewer: Principal | None = None
) -> list[DocumentSummary]:
    """The documents of a deal in the contract shape; the caller (deals router) checks who may see the deal.

    With a `viewer`, only what they may read (`may_read`): a party does not see another buyer's voided ones.
    """
    rows = await session.exec(
        select(Document).where(Document.deal_id == deal_id).order_by(col(Document.created_at), col(Document.kind))
    )
    documents = list(rows.all())
    if not documents:
        return []
    signers: dict[uuid.UUID, list[SignatureRequest]] = {d.id: [] for d in documents}
    requests = await session.exec(
        select(SignatureRequest)
        .where(col(SignatureRequest.document_id).in_(list(signers)))
        .order_by(col(SignatureRequest.signing_order), col(SignatureRequest.created_at))
    )
    for request in requests.all():  # one query for every document's signers: deal reads are the busiest
        signers[request.document_id].append(request)
    if viewer is not None:
        documents = [d for d in documents if d.status != DocumentStatus.VOIDED or may_view(viewer, d, signers[d.id])]
    return [summary(d, signers[d.id]) for d in documents]


async def signature_events(session: AsyncSession, document_id: uuid.UUID) -> list[SignatureEventRead]:
    """The audit trail of a document, oldest first."""
    rows = await session.exec(
        select(SignatureEvent).where(SignatureEvent.document_id == document_id).order_by(col(SignatureEvent.at))
    )
    return [
        SignatureEventRead(
            kind=SignatureEventKind(e.kind),
            actor_id=e.actor_id,
            ip=e.ip,
            user_agent=e.user_agent,
            document_sha256=e.document_sha256,
            at=e.at,
            detail=e.detail,
        )
        for e in rows.all()
    ]
