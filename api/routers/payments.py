"""Payments endpoints: the provider webhook, and the sandbox rail outside production.

The webhook signals the deal workflow `deal-{id}` (`payment_received`) whenever the
deal is fully funded after the event, duplicates included: a signal lost to a crash
between commit and signal is re-sent by the provider's redelivery, so the workflow
must treat the signal as idempotent.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import structlog
from fastapi import APIRouter, BackgroundTasks, Body, Depends, Header, Request, status
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.deps import SessionDep, SessionsDep, SettingsDep, TemporalDep
from models.base import Money
from models.payments import PaymentReceived, PaymentUpdate, SandboxSettle, SandboxSettleAccepted, WebhookAck
from pap.db import transaction
from pap.settings import Settings
from services import payments
from services.errors import DomainError, InvalidInput, NotFound
from temporal.ids import deal_workflow_id

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/v1/payments", tags=["payments"])

PAYMENT_RECEIVED_SIGNAL = "payment_received"


class DealSignalError(DomainError):
    status = 503
    type = "signal-failed"
    title = "The deal workflow could not be signalled; retry the delivery"


async def _signal_deal(temporal: Client, update: PaymentUpdate) -> None:
    handle = temporal.get_workflow_handle(deal_workflow_id(update.deal_id))
    signal = PaymentReceived(
        payment_id=update.payment_id, deal_id=update.deal_id, amount=update.received, funded=update.funded
    )
    try:
        await handle.signal(PAYMENT_RECEIVED_SIGNAL, signal)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            log.info("no deal workflow to signal", deal_id=str(update.deal_id))
            return
        log.warning("deal workflow signal failed", deal_id=str(update.deal_id), error=str(error))
        raise DealSignalError("The payment is recorded; the deal could not be told yet.") from error


@router.post("/webhook", responses={401: {"description": "Bad or missing signature"}})
async def provider_webhook(
    request: Request,
    sessions: SessionsDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    x_signature: Annotated[str | None, Header()] = None,
) -> WebhookAck:
    body = await request.body()
    event = payments.verify_webhook(settings.payments_webhook_secret.get_secret_value(), body, x_signature)
    async with transaction(sessions) as session:
        update = await payments.record_provider_payment(
            session, event_id=event.event_id, payment_id=event.payment_id, status=event.status, amount=event.amount
        )
    if update.funded:
        await _signal_deal(temporal, update)
    return WebhookAck(
        status="duplicate" if update.duplicate else "applied", payment_status=update.status, funded=update.funded
    )


async def _not_in_production(settings: SettingsDep) -> Settings:
    if settings.is_production:
        raise NotFound("The sandbox payment rail does not exist in production.")
    return settings


sandbox_router = APIRouter(prefix="/v1/sandbox/payments", tags=["sandbox"], dependencies=[Depends(_not_in_production)])


@sandbox_router.post("/{payment_id}/settle", status_code=status.HTTP_202_ACCEPTED)
async def sandbox_settle(
    payment_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    background: BackgroundTasks,
    body: Annotated[SandboxSettle | None, Body()] = None,
) -> SandboxSettleAccepted:
    """Make the sandbox rail confirm a payment: a signed webhook is delivered after this 202."""
    request = body or SandboxSettle()
    payment = await payments.get_payment(session, payment_id)
    amount: Money = request.amount or payment.amount
    if amount.amount <= 0 or amount.currency != payment.amount.currency:
        raise InvalidInput(
            f"A payment is settled with a positive amount in {payment.amount.currency}.",
            errors=[
                {"pointer": "/body/amount", "field": "amount", "detail": f"positive, in {payment.amount.currency}"}
            ],
        )
    provider = payments.SandboxProvider.from_settings(settings)
    event, raw = provider.settlement(payment_id, amount, request.status)
    background.add_task(provider.deliver, raw)
    return event
