"""The payment provider port: what a real rail (or the sandbox) offers us, and how its webhooks are trusted.

A provider confirms payments by posting a JSON event to `/v1/payments/webhook`,
signed with HMAC-SHA256 over the raw body (hex, header `X-Signature`) using the
shared secret `PAP_PAYMENTS_WEBHOOK_SECRET`.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import Protocol

from pydantic import ValidationError

from models.base import Money
from models.payments import ProviderWebhook
from services.errors import InvalidInput, Unauthenticated

SIGNATURE_HEADER = "X-Signature"


class InvalidSignature(Unauthenticated):
    type = "invalid-signature"
    title = "The webhook signature is missing or wrong"


class PaymentProvider(Protocol):
    """A payment rail: it collects money for a payment and later confirms it by webhook."""

    name: str

    async def create_payment_intent(self, payment_id: uuid.UUID, amount: Money, reference: str) -> str:
        """Ask the rail to expect `amount` for `payment_id`; returns the provider's reference."""
        ...


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_webhook(secret: str, body: bytes, signature: str | None) -> ProviderWebhook:
    """Check the HMAC in constant time before reading anything of the body, then parse it."""
    if not signature or not hmac.compare_digest(sign(secret, body).encode(), signature.strip().lower().encode()):
        raise InvalidSignature("The X-Signature header does not match the body.")
    try:
        return ProviderWebhook.model_validate_json(body)
    except ValidationError as error:
        raise InvalidInput(
            "The webhook body is not a valid payment event.",
            errors=[
                {"pointer": "/" + "/".join(str(p) for p in e["loc"]), "detail": e["msg"], "code": e["type"]}
                for e in error.errors()
            ],
        ) from error
