"""The e-signature provider interface and the built-in provider that implements it with our own tables.

A DocuSign or Dropbox Sign adapter would implement `SignatureProvider` by calling the
vendor's API (create envelope, void, remind) and feed its webhooks into the same
service functions; the built-in provider keeps everything in the `documents` schema.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Protocol

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import utcnow
from models.documents import (
    Document,
    SignatureEvent,
    SignatureEventKind,
    SignatureRequest,
    SignerSpec,
    SignerStatus,
)

REMINDER_GAP = timedelta(hours=1)
"""A signer reminded this recently is not reminded again: the workflow's reminders are days apart,
so this only stops a retried reminder step (its first attempt committed) from emailing twice."""


class SignatureProvider(Protocol):
    """What any e-signature provider offers the platform."""

    name: str

    async def create_envelope(self, session: AsyncSession, document: Document, signers: list[SignerSpec]) -> str:
        """Send the document for signature to `signers` in their order; returns the provider's envelope ref."""
        ...

    async def void_envelope(self, session: AsyncSession, document: Document, reason: str) -> None:
        """Cancel every outstanding signature request of the envelope."""
        ...

    async def remind(self, session: AsyncSession, document: Document) -> list[SignatureRequest]:
        """Nudge the signers whose turn it is; returns who was reminded."""
        ...


async def pending_requests(session: AsyncSession, document_id: object) -> list[SignatureRequest]:
    rows = await session.exec(
        select(SignatureRequest)
        .where(SignatureRequest.document_id == document_id, SignatureRequest.status == SignerStatus.PENDING)
        .order_by(col(SignatureRequest.signing_order), col(SignatureRequest.created_at))
    )
    return list(rows.all())


class BuiltinSignatureProvider:
    """Signature requests, signing links and the audit trail kept by the platform itself."""

    name = "builtin"

    async def create_envelope(self, session: AsyncSession, document: Document, signers: list[SignerSpec]) -> str:
        for spec in signers:
            request = SignatureRequest(
                document_id=document.id,
                user_id=spec.user_id,
                role=spec.role,
                name=spec.name,
                email=str(spec.email),
                signing_order=spec.order,
            )
            session.add(request)
            await session.flush()
            session.add(
                SignatureEvent(
                    document_id=document.id,
                    signature_request_id=request.id,
                    actor_id=None,
                    kind=SignatureEventKind.SENT,
                    document_sha256=document.sha256,
                    detail={"signer_id": str(spec.user_id), "order": spec.order, "email": str(spec.email)},
                )
            )
        return f"builtin:{document.id}"

    async def void_envelope(self, session: AsyncSession, document: Document, reason: str) -> None:
        for request in await pending_requests(session, document.id):
            request.status = SignerStatus.VOIDED
            session.add(request)
        session.add(
            SignatureEvent(
                document_id=document.id,
                kind=SignatureEventKind.VOIDED,
                document_sha256=document.sha256,
                detail={"reason": reason},
            )
        )

    async def remind(self, session: AsyncSession, document: Document) -> list[SignatureRequest]:
        pending = await pending_requests(session, document.id)
        if not pending:
            return []
        current = min(r.signing_order for r in pending)
        recently = await self._reminded_since(session, document.id, utcnow() - REMINDER_GAP)
        due = [r for r in pending if r.signing_order == current and r.id not in recently]
        for request in due:
            session.add(
                SignatureEvent(
                    document_id=document.id,
                    signature_request_id=request.id,
                    kind=SignatureEventKind.REMINDED,
                    document_sha256=document.sha256,
                    detail={"signer_id": str(request.user_id)},
                )
            )
        return due

    @staticmethod
    async def _reminded_since(session: AsyncSession, document_id: object, since: datetime) -> set[uuid.UUID]:
        rows = await session.exec(
            select(SignatureEvent.signature_request_id).where(
                SignatureEvent.document_id == document_id,
                SignatureEvent.kind == SignatureEventKind.REMINDED,
                col(SignatureEvent.at) > since,
            )
        )
        return {request_id for request_id in rows.all() if request_id is not None}


PROVIDERS: dict[str, SignatureProvider] = {BuiltinSignatureProvider.name: BuiltinSignatureProvider()}


def provider_for(name: str) -> SignatureProvider:
    return PROVIDERS[name]
