"""SMS: the `SmsProvider` protocol and an HTTP adapter (our sandbox at /v1/sandbox/sms, or a real API alike)."""

from __future__ import annotations

from typing import Protocol

from pap.http import http_client


class SmsProvider(Protocol):
    async def send(self, to: str, body: str, *, idempotency_key: str) -> str:
        """Send one text; returns the provider's message id. Must be idempotent per `idempotency_key`."""
        ...


class HttpSmsProvider:
    """POSTs `{to, body}` to `<base_url>/messages` with an Idempotency-Key, like a hosted SMS API."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    async def send(self, to: str, body: str, *, idempotency_key: str) -> str:
        async with http_client(timeout=self.timeout) as client:
            response = await client.post(
                f"{self.base_url}/messages",
                json={"to": to, "body": body},
                headers={"Idempotency-Key": idempotency_key},
            )
            response.raise_for_status()
            return str(response.json()["id"])
