"""Forwards document and payment events to the deal workflow they concern.

The API signals the workflow right after a signature or a webhook; this consumer
is the at-least-once backstop: if that process died between its commit and its
signal, the outbox event still reaches the workflow (signals are idempotent there).
It runs `workflow_backstop_delay_seconds` behind the events and skips deals that
have ended, so a deal that finishes within that time (an automated one) is not
signalled twice; a longer one gets one harmless duplicate.
"""

from __future__ import annotations

import uuid

import structlog
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from events.envelope import CloudEvent
from models.base import Money
from models.deals import TERMINAL_STAGES, DealStage
from models.documents import DocumentDeclined, DocumentKind, DocumentSigned
from models.payments import PaymentReceived
from services import deals
from services.errors import NotFound
from temporal.ids import deal_workflow_id

log = structlog.get_logger(__name__)

FORWARDED = frozenset({"documents.document.signed", "documents.signature.declined", "payments.escrow.funded"})


class DealSignalForwarder:
    def __init__(self, client: Client) -> None:
        self.client = client

    async def __call__(self, session: AsyncSession, event: CloudEvent) -> None:
        data = event.data
        deal_id = uuid.UUID(data["deal_id"])
        try:
            deal = await deals.get_deal(session, deal_id)
        except NotFound:
            log.warning("deal event without a known deal", deal_id=str(deal_id), type=event.type)
            return
        if DealStage(deal.stage) in TERMINAL_STAGES:
            return  # closed or cancelled: its workflow has nothing left to hear
        name: str
        payload: object
        if event.type == "documents.document.signed":
            name = "document_signed"
            payload = DocumentSigned(
                document_id=uuid.UUID(data["document_id"]),
                deal_id=deal_id,
                kind=DocumentKind(data["kind"]),
                signer_id=deal_id,
                completed=True,
            )
        elif event.type == "documents.signature.declined":
            name = "document_declined"
            payload = DocumentDeclined(
                document_id=uuid.UUID(data["document_id"]),
                deal_id=deal_id,
                signer_id=uuid.UUID(data["signer_id"]),
                reason=data.get("reason") or "declined",
            )
        else:
            name = "payment_received"
            payload = PaymentReceived(
                payment_id=uuid.UUID(data["payment_id"]),
                deal_id=deal_id,
                amount=Money.model_validate(data["amount"]),
                funded=True,
            )
        try:
            await self.client.get_workflow_handle(deal_workflow_id(deal_id)).signal(name, payload)
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            log.info("no running deal workflow for event", deal_id=str(deal_id), type=event.type)
