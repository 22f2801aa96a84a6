"""Completing an envelope: the executed PDF is the original + a signature certificate, PAdES-sealed by the platform."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import utcnow
from models.documents import Document, DocumentKind, DocumentStatus, SignatureEvent, SignatureRequest
from pap.storage import ObjectStore
from services.documents.certificate import (
    CertificateEvent,
    CertificateSigner,
    append_pages,
    certificate_text,
    render_certificate,
)
from services.documents.documents import PDF, document_bytes, emit_document_event, storage_key
from services.documents.pades import load_signing_key, pades_sign
from services.documents.rendering import sha256_hex

DOCUMENT_SIGNED = "documents.document.signed"


async def complete_document(session: AsyncSession, store: ObjectStore, keys_dir: Path, document: Document) -> None:
    """Called, under the document's row lock, when the last signer has signed."""
    original = await document_bytes(store, document, "original")
    requests = list(
        (
            await session.exec(
                select(SignatureRequest)
                .where(SignatureRequest.document_id == document.id)
                .order_by(col(SignatureRequest.signing_order), col(SignatureRequest.signed_at))
            )
        ).all()
    )
    events = list(
        (
            await session.exec(
                select(SignatureEvent).where(SignatureEvent.document_id == document.id).order_by(col(SignatureEvent.at))
            )
        ).all()
    )
    now = utcnow()
    text = certificate_text(
        document_id=str(document.id),
        kind=document.kind,
        deal_id=str(document.deal_id),
        sha256=document.sha256,
        signers=[
            CertificateSigner(
                name=r.name,
                role=r.role,
                user_id=str(r.user_id),
                signature_name=r.signature_name or "",
                signed_at=r.signed_at or now,
                ip=r.signed_ip,
            )
            for r in requests
        ],
        events=[
            CertificateEvent(
                kind=e.kind,
                at=e.at,
                actor=str(e.actor_id) if e.actor_id else "platform",
                ip=e.ip,
                user_agent=e.user_agent,
                document_sha256=e.document_sha256,
            )
            for e in events
        ],
    )
    executed = append_pages(original, render_certificate(text, now))
    signed = await pades_sign(executed, load_signing_key(keys_dir), reason=f"Executed {document.kind} {document.id}")
    key = storage_key(document.deal_id, DocumentKind(document.kind), document.id, signed=True)
    await store.put(key, signed, PDF)
    document.signed_storage_key = key
    document.signed_sha256 = sha256_hex(signed)
    document.status = DocumentStatus.SIGNED
    document.completed_at = now
    session.add(document)
    await emit_document_event(session, document, DOCUMENT_SIGNED, signed_sha256=document.signed_sha256)
