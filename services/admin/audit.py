"""The tamper-evident audit trail: each entry's hash covers the previous hash and the entry's canonical JSON.

Appends are serialised with a transaction-scoped advisory lock so the chain stays
linear; the table itself refuses UPDATE/DELETE (a trigger in the migration).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.admin import AuditEntry, VerifyResult
from models.base import utcnow

GENESIS_HASH = "0" * 64
_AUDIT_LOCK_KEY = 0x5041505F41554454  # "PAP_AUDT": one lock for the one chain
_VERIFY_BATCH = 1000


def _canonical(value: Any) -> Any:
    """JSON-safe data exactly as JSONB returns it, so the hash recomputes after a round trip."""
    return json.loads(json.dumps(value, default=str))


def entry_hash(
    prev_hash: str,
    *,
    id: uuid.UUID,
    at: datetime,
    actor_id: uuid.UUID | None,
    action: str,
    entity_type: str,
    entity_id: str | None,
    data: dict[str, Any],
) -> str:
    body = {
        "id": str(id),
        "at": at.isoformat(),
        "actor_id": str(actor_id) if actor_id else None,
        "action": action,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "data": data,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


async def record_audit(
    session: AsyncSession,
    *,
    actor_id: uuid.UUID | None,
    action: str,
    entity_type: str,
    entity_id: str | uuid.UUID | None,
    data: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry in the caller's transaction (it exists only if that transaction commits)."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _AUDIT_LOCK_KEY})
    last = (await session.execute(select(AuditEntry.hash).order_by(col(AuditEntry.seq).desc()).limit(1))).first()
    prev_hash = last[0] if last else GENESIS_HASH
    entry_id = uuid.uuid4()
    at = utcnow()
    clean = _canonical(data or {})
    entity = str(entity_id) if entity_id is not None else None
    entry = AuditEntry(
        id=entry_id,
        at=at,
        actor_id=actor_id,
        action=action,
        entity_type=entity_type,
        entity_id=entity,
        data=clean,
        prev_hash=prev_hash,
        hash=entry_hash(
            prev_hash,
            id=entry_id,
            at=at,
            actor_id=actor_id,
            action=action,
            entity_type=entity_type,
            entity_id=entity,
            data=clean,
        ),
    )
    session.add(entry)
    await session.flush()
    return entry


async def verify_chain(session: AsyncSession) -> VerifyResult:
    """Recompute every link in order; report the first entry whose hash or back-link does not match."""
    prev_hash = GENESIS_HASH
    count = 0
    after = 0
    while True:
        rows = (
            await session.exec(
                select(AuditEntry)
                .where(col(AuditEntry.seq) > after)
                .order_by(col(AuditEntry.seq))
                .limit(_VERIFY_BATCH)
                .execution_options(populate_existing=True)
            )
        ).all()
        if not rows:
            return VerifyResult(ok=True, entries=count)
        for entry in rows:
            assert entry.seq is not None
            expected = entry_hash(
                prev_hash,
                id=entry.id,
                at=entry.at,
                actor_id=entry.actor_id,
                action=entry.action,
                entity_type=entry.entity_type,
                entity_id=entry.entity_id,
                data=entry.data,
            )
            if entry.prev_hash != prev_hash:
                return VerifyResult(ok=False, entries=count, broken_at_seq=entry.seq, detail="prev_hash does not link")
            if entry.hash != expected:
                return VerifyResult(
                    ok=False, entries=count, broken_at_seq=entry.seq, detail="hash does not match the content"
                )
            prev_hash = entry.hash
            count += 1
            after = entry.seq


async def list_audit(
    session: AsyncSession,
    *,
    entity_id: str | None = None,
    action: str | None = None,
    limit: int = 50,
    before_seq: int | None = None,
) -> list[AuditEntry]:
    """Newest first; `before_seq` is the cursor."""
    query = select(AuditEntry).order_by(col(AuditEntry.seq).desc()).limit(limit)
    if entity_id is not None:
        query = query.where(AuditEntry.entity_id == entity_id)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if before_seq is not None:
        query = query.where(col(AuditEntry.seq) < before_seq)
    return list((await session.exec(query)).all())
