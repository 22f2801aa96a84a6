"""Account freezes: compliance stops an account from trading and ends its sessions.

Other contexts ask `is_frozen(session, user_id)` before taking on new obligations
(orders, deals); they never read the table themselves.
"""

from __future__ import annotations

import uuid

from redis.asyncio import Redis
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.admin import AccountFreeze, FreezeRead
from models.base import utcnow
from pap.db import lock_for_transaction, lock_shared_for_transaction
from services.admin.audit import record_audit
from services.errors import Conflict, Forbidden


class AccountFrozen(Forbidden):
    type = "account-frozen"
    title = "The account is frozen"


class NotFrozen(Conflict):
    type = "not-frozen"
    title = "The account is not frozen"


class OwnFreeze(Forbidden):
    type = "own-freeze"
    title = "Compliance cannot freeze or unfreeze their own account"


def _not_own(user_id: uuid.UUID, actor_id: uuid.UUID) -> None:
    """A frozen officer can still sign in; the freeze must be decided by someone else."""
    if user_id == actor_id:
        raise OwnFreeze("Another compliance officer must decide on a freeze of your own account.")


async def _active(session: AsyncSession, user_id: uuid.UUID, *, lock: bool = False) -> AccountFreeze | None:
    query = select(AccountFreeze).where(AccountFreeze.user_id == user_id, col(AccountFreeze.lifted_at).is_(None))
    if lock:
        query = query.with_for_update()
    return (await session.exec(query.order_by(col(AccountFreeze.frozen_at).desc()).limit(1))).first()


async def is_frozen(session: AsyncSession, user_id: uuid.UUID) -> bool:
    """Whether a compliance freeze currently applies to `user_id`."""
    return await _active(session, user_id) is not None


def _account_key(user_id: uuid.UUID) -> str:
    return f"admin:account:{user_id}"


async def ensure_not_frozen(session: AsyncSession, *user_ids: uuid.UUID) -> None:
    """Raise `AccountFrozen` (403 `account-frozen`) when any of `user_ids` is frozen.

    Holds the account's lock shared until the caller's transaction ends: a freeze waits for what was checked
    before it (an order being placed) to commit, so it finds that order and cancels it with the rest."""
    for user_id in sorted(user_ids):
        await lock_shared_for_transaction(session, _account_key(user_id))
        if await is_frozen(session, user_id):
            raise AccountFrozen(f"The account {user_id} is frozen by compliance.")


async def freeze_account(
    session: AsyncSession, redis: Redis, *, user_id: uuid.UUID, actor_id: uuid.UUID, reason: str
) -> FreezeRead:
    """Freeze (idempotent: an already frozen account keeps its first freeze) and end every session."""
    from services import identity  # identity's audit trail imports this package: import late

    _not_own(user_id, actor_id)
    await identity.get_user(session, user_id)
    await lock_for_transaction(session, _account_key(user_id))  # after every placement already past its check
    freeze = await _active(session, user_id, lock=True)
    if freeze is None:
        freeze = AccountFreeze(user_id=user_id, reason=reason, frozen_by=actor_id)
        session.add(freeze)
        await session.flush()
    revoked = await identity.revoke_all_sessions(
        session, redis, user_id=user_id, actor_id=actor_id, reason="account_frozen"
    )
    await record_audit(
        session,
        actor_id=actor_id,
        action="compliance.account_frozen",
        entity_type="user",
        entity_id=user_id,
        data={"reason": reason, "freeze_id": str(freeze.id), "sessions_revoked": revoked},
    )
    return FreezeRead(
        user_id=user_id, frozen=True, reason=freeze.reason, frozen_at=freeze.frozen_at, sessions_revoked=revoked
    )


async def unfreeze_account(
    session: AsyncSession, *, user_id: uuid.UUID, actor_id: uuid.UUID, reason: str | None
) -> FreezeRead:
    _not_own(user_id, actor_id)
    freeze = await _active(session, user_id, lock=True)
    if freeze is None:
        raise NotFrozen(f"The account {user_id} is not frozen.")
    freeze.lifted_at = utcnow()
    freeze.lifted_by = actor_id
    freeze.lift_reason = reason
    session.add(freeze)
    await session.flush()
    await record_audit(
        session,
        actor_id=actor_id,
        action="compliance.account_unfrozen",
        entity_type="user",
        entity_id=user_id,
        data={"reason": reason, "freeze_id": str(freeze.id)},
    )
    return FreezeRead(
        user_id=user_id, frozen=False, reason=freeze.reason, frozen_at=freeze.frozen_at, lifted_at=freeze.lifted_at
    )
