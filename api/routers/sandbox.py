"""`/v1/sandbox/kyc/*`: a fake third-party KYC provider, served only outside production.

It behaves like a real provider: it accepts a check over HTTP and later POSTs
the signed result to the webhook. Approved unless the legal name contains
`REJECT`; no webhook at all when it contains `NOWEBHOOK` (to exercise timeouts).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import date
from typing import Any

import httpx
import structlog
from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, Field

from api.deps import SettingsDep
from pap.http import http_client
from pap.settings import Settings
from services.errors import InvalidInput, NotFound
from services.profiles.kyc_provider import SIGNATURE_HEADER, sign

log = structlog.get_logger(__name__)

DELIVERY_DELAY_SECONDS = 0.05
DELIVERY_ATTEMPTS = 5
_pending: set[asyncio.Task[None]] = set()


async def _not_in_production(settings: SettingsDep) -> None:
    if settings.is_production:
        raise NotFound("There is no sandbox in production.")


router = APIRouter(prefix="/v1/sandbox/kyc", tags=["sandbox"], dependencies=[Depends(_not_in_production)])


class SandboxCheck(BaseModel):
    user_id: uuid.UUID
    check_id: uuid.UUID
    legal_name: str = Field(min_length=1, max_length=200)
    date_of_birth: date
    country: str = Field(pattern="^[A-Z]{2}$")
    tax_id_last4: str = Field(pattern=r"^[0-9]{4}$")
    callback_url: str = Field(max_length=500)


async def _deliver(url: str, body: bytes, secret: str) -> None:
    await asyncio.sleep(DELIVERY_DELAY_SECONDS)  # a provider answers later, never inside the request
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, secret)}
    async with http_client(timeout=10) as client:
        for attempt in range(DELIVERY_ATTEMPTS):
            try:
                response = await client.post(url, content=body, headers=headers)
                if response.status_code < 500:
                    return
            except httpx.HTTPError as error:
                log.warning("sandbox kyc webhook delivery failed", attempt=attempt, error=str(error))
            await asyncio.sleep(0.5 * 2**attempt)


def _own_webhook(settings: Settings) -> str:
    return f"http://{settings.api_host}:{settings.api_port}/v1/profiles/kyc/webhook"


@router.post("/checks", status_code=status.HTTP_202_ACCEPTED)
async def create_check(body: SandboxCheck, settings: SettingsDep) -> dict[str, Any]:
    """Accept a check; the verdict follows asynchronously as a signed webhook."""
    if body.callback_url != _own_webhook(settings):
        raise InvalidInput("The sandbox only calls back this platform's KYC webhook.")
    provider_ref = f"sbx_{body.check_id.hex}"
    if "NOWEBHOOK" not in body.legal_name:
        rejected = "REJECT" in body.legal_name
        payload = {
            "event_id": f"evt_{uuid.uuid4().hex}",
            "check_id": str(body.check_id),
            "reference": provider_ref,
            "status": "rejected" if rejected else "approved",
            "reason": "Sandbox: identity could not be verified" if rejected else None,
        }
        raw = json.dumps(payload).encode()
        task = asyncio.create_task(_deliver(body.callback_url, raw, settings.kyc_webhook_secret.get_secret_value()))
        _pending.add(task)
        task.add_done_callback(_pending.discard)
    return {"provider_ref": provider_ref, "status": "processing"}
