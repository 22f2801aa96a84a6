"""The sandbox payment rail: behaves like a real provider, delivering signed webhooks over HTTP.

Only served when `PAP_ENV` is not production. `settle` builds a provider event and
POSTs it to our own webhook endpoint, retrying transient failures like a real rail.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Literal

import httpx
import structlog

from models.base import Money
from models.payments import SandboxSettleAccepted
from pap.http import http_client
from pap.settings import Settings
from services.payments.provider import SIGNATURE_HEADER, sign

log = structlog.get_logger(__name__)


@dataclass
class SandboxProvider:
    """A `PaymentProvider` whose confirmations are webhooks to `webhook_url`."""

    webhook_url: str
    secret: str
    attempts: int = 6
    first_backoff_seconds: float = 0.2
    name: str = "sandbox"

    @classmethod
    def from_settings(cls, settings: Settings) -> SandboxProvider:
        return cls(
            webhook_url=f"http://{settings.api_host}:{settings.api_port}/v1/payments/webhook",
            secret=settings.payments_webhook_secret.get_secret_value(),
        )

    async def create_payment_intent(self, payment_id: uuid.UUID, amount: Money, reference: str) -> str:
        return f"sandbox_{payment_id}"

    def settlement(
        self, payment_id: uuid.UUID, amount: Money, status: Literal["succeeded", "failed"]
    ) -> tuple[SandboxSettleAccepted, bytes]:
        """The event the rail will deliver, and its exact body bytes (what the signature covers)."""
        event = SandboxSettleAccepted(
            event_id=f"evt_{uuid.uuid4().hex}", payment_id=payment_id, status=status, amount=amount
        )
        return event, json.dumps(event.model_dump(mode="json")).encode()

    async def deliver(self, body: bytes) -> bool:
        """POST the signed event; retry on network errors, 5xx, 408 and 429 with exponential backoff."""
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(self.secret, body)}
        delay = self.first_backoff_seconds
        async with http_client(timeout=10) as client:
            for attempt in range(1, self.attempts + 1):
                try:
                    response = await client.post(self.webhook_url, content=body, headers=headers)
                    if response.is_success:
                        return True
                    if response.status_code < 500 and response.status_code not in (408, 429):
                        log.warning("sandbox webhook rejected", status=response.status_code, body=response.text)
                        return False
                    log.info("sandbox webhook failed, retrying", status=response.status_code, attempt=attempt)
                except httpx.HTTPError as error:
                    log.info("sandbox webhook unreachable, retrying", error=str(error), attempt=attempt)
                if attempt < self.attempts:
                    await asyncio.sleep(delay)  # backoff between deliveries, not synchronisation
                    delay *= 2
        log.error("sandbox webhook not delivered", url=self.webhook_url)
        return False
