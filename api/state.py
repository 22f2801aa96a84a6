"""The clients the API process shares between requests, opened in the lifespan."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from temporalio.client import Client

from api.deal_changes import DealChanges
from pap.resources import Resources
from services.identity.tokens import KeyRing, Principal
from temporal.client import connect

REVOKED_SESSION_KEY = "pap:identity:revoked-session:{}"


@dataclass
class AppState:
    resources: Resources
    keyring: KeyRing
    deal_changes: DealChanges
    _temporal: Client | None = None
    _temporal_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def temporal(self) -> Client:
        """Connect on first use, so the API starts (and reports not-ready) while Temporal is down."""
        if self._temporal is None:
            async with self._temporal_lock:
                if self._temporal is None:
                    settings = self.resources.settings
                    self._temporal = await connect(
                        settings.require("temporal_address"),
                        settings.temporal_namespace,
                    )
        return self._temporal

    async def is_revoked(self, principal: Principal) -> bool:
        """Whether the token's session was revoked (Redis holds revocations for fast checks)."""
        if principal.session_id is None:
            return False
        return bool(await self.resources.redis.exists(REVOKED_SESSION_KEY.format(principal.session_id)))
