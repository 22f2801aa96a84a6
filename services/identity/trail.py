"""Security events: every one goes to the audit trail and, through the outbox, to `pap.identity`."""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from events import topics
from events.outbox import record_event, record_event_once
from services.admin import record_audit

SOURCE = "/pap/identity"

USER_REGISTERED = "identity.user.registered"
REGISTRATION_EXISTING_EMAIL = "identity.user.registration_existing_email"
LOGIN_SUCCEEDED = "identity.login.succeeded"
LOGIN_FAILED = "identity.login.failed"
LOGIN_THROTTLED = "identity.login.throttled"
MFA_ENROLLED = "identity.mfa.enrolled"
SESSION_REVOKED = "identity.session.revoked"
ROLES_CHANGED = "identity.roles.changed"
REFRESH_REUSE_DETECTED = "identity.refresh.reuse_detected"
ADMIN_BOOTSTRAPPED = "identity.admin.bootstrapped"
PASSWORD_CHANGED = "identity.password.changed"
PASSWORD_RESET_REQUESTED = "identity.password.reset_requested"
PASSWORD_RESET = "identity.password.reset"


async def security_event(
    session: AsyncSession,
    action: str,
    *,
    actor_id: uuid.UUID | None,
    entity_type: str,
    entity_id: uuid.UUID | str | None,
    data: dict[str, Any] | None = None,
    event_id: uuid.UUID | None = None,
) -> None:
    """Audit `action` and announce it on the identity topic; with `event_id`, announce it only once (what
    anyone can trigger at will must not become a stream of notices to the account's owner)."""
    payload = {"actor_id": str(actor_id) if actor_id else None, **(data or {})}
    await record_audit(
        session, actor_id=actor_id, action=action, entity_type=entity_type, entity_id=entity_id, data=data or {}
    )
    key = str(entity_id) if entity_id is not None else "anonymous"
    fields: dict[str, Any] = {"topic": topics.IDENTITY, "key": key, "type": action, "source": SOURCE, "subject": key}
    if event_id is None:
        await record_event(session, data=payload, **fields)
    else:
        await record_event_once(session, event_id=event_id, data=payload, **fields)
