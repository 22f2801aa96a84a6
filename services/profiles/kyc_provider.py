"""The KYC provider port and its HTTP adapter, plus webhook signing (HMAC-SHA256 over the raw body).

A real provider and the sandbox speak the same protocol: we POST a check
request, they later POST a signed result to our webhook.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Protocol

from models.profiles import KycCheckRequest
from pap.http import http_client

SIGNATURE_HEADER = "X-Signature"


class KycProvider(Protocol):
    async def request_check(self, request: KycCheckRequest, *, callback_url: str) -> str:
        """Submit a check; returns the provider's reference. Must be idempotent per `request.check_id`."""
        ...


class HttpKycProvider:
    """Talks to a provider over HTTP (our sandbox, or a real one with the same API shape)."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    async def request_check(self, request: KycCheckRequest, *, callback_url: str) -> str:
        async with http_client(timeout=self.timeout) as client:
            response = await client.post(
                f"{self.base_url}/checks",
                json={**request.model_dump(mode="json"), "callback_url": callback_url},
                headers={"Idempotency-Key": f"kyc-check-{request.check_id}"},
            )
            response.raise_for_status()
            return str(response.json()["provider_ref"])


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_valid(body: bytes, signature: str | None, secret: str) -> bool:
    """Constant-time comparison; accepts the bare hex digest or `sha256=<hex>`."""
    if not signature:
        return False
    expected = sign(body, secret)
    candidate = signature if signature.startswith("sha256=") else "sha256=" + signature
    return hmac.compare_digest(expected.encode(), candidate.encode())  # bytes: any header text compares
