"""Users: registration, lookup, roles, and the bootstrap admin."""

from __future__ import annotations

import uuid

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import text
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import utcnow
from models.identity import User, UserRead
from services.errors import Conflict, InvalidInput, NotFound
from services.identity import trail
from services.identity.passwords import check_policy, hash_password
from services.identity.permissions import Role

_BOOTSTRAP_LOCK_KEY = 0x5041505F41444D4E  # "PAP_ADMN"


class InvalidEmail(InvalidInput):
    type = "invalid-email"
    title = "The email address is not valid"


class BootstrapEmailTaken(Conflict):
    type = "bootstrap-email-taken"
    title = "The bootstrap admin's email belongs to an existing account"


class LastAdmin(Conflict):
    type = "last-admin"
    title = "The platform's last admin cannot lose the admin role"


class IssuerNeedsCompany(InvalidInput):
    type = "issuer-needs-company"
    title = "An issuer must be linked to a company"


def normalise_email(raw: str) -> str:
    """Lower-cased, trimmed and syntax-checked (no DNS lookup: registration must not depend on the network)."""
    candidate = raw.strip().lower()
    try:
        return validate_email(candidate, check_deliverability=False).normalized.lower()
    except EmailNotValidError as error:
        raise InvalidEmail(
            str(error), errors=[{"pointer": "/email", "field": "email", "detail": str(error), "code": "invalid_email"}]
        ) from error


def to_read(user: User) -> UserRead:
    return UserRead(
        id=user.id, email=user.email, full_name=user.full_name, roles=user.roles, company_id=user.company_id
    )


async def find_by_email(session: AsyncSession, email: str, *, for_update: bool = False) -> User | None:
    query = select(User).where(User.email == email)
    if for_update:
        query = query.with_for_update()
    return (await session.exec(query)).first()


async def get_user(session: AsyncSession, user_id: uuid.UUID, *, for_update: bool = False) -> User:
    user = await session.get(User, user_id, with_for_update=for_update)
    if user is None:
        raise NotFound(f"user {user_id} does not exist")
    return user


async def register(session: AsyncSession, *, email: str, password: str, full_name: str) -> UserRead:
    """Create an investor; for an email already taken, answer the same shape without creating anything.

    Answering 409 would let anyone probe which emails have accounts. The existing
    owner is told through an event (notifications can email them).
    """
    email = normalise_email(email)
    check_policy(password, email=email)
    password_hash = await hash_password(password)  # also for an existing email: same work, same timing
    existing = await find_by_email(session, email, for_update=True)  # concurrent attempts take turns
    if existing is not None:
        hour = utcnow().strftime("%Y-%m-%dT%H")
        await trail.security_event(
            session,
            trail.REGISTRATION_EXISTING_EMAIL,
            actor_id=None,
            entity_type="user",
            entity_id=existing.id,
            data={},
            event_id=uuid.uuid5(existing.id, f"registration-existing-email:{hour}"),  # one notice an hour at most
        )
        return UserRead(id=uuid.uuid4(), email=email, full_name=full_name.strip(), roles=[Role.INVESTOR.value])
    user = User(email=email, full_name=full_name.strip(), password_hash=password_hash, roles=[Role.INVESTOR.value])
    session.add(user)
    await session.flush()
    await trail.security_event(
        session, trail.USER_REGISTERED, actor_id=user.id, entity_type="user", entity_id=user.id, data={}
    )
    return to_read(user)


async def set_roles(
    session: AsyncSession,
    *,
    actor_id: uuid.UUID,
    user_id: uuid.UUID,
    roles: list[Role],
    company_id: uuid.UUID | None,
) -> User:
    """Replace a user's roles; an issuer must name its company. Takes effect at the next token refresh."""
    if Role.ISSUER in roles and company_id is None:
        raise IssuerNeedsCompany(
            "The issuer role needs a company_id.",
            errors=[
                {"pointer": "/company_id", "field": "company_id", "detail": "required for issuer", "code": "missing"}
            ],
        )
    user = await get_user(session, user_id, for_update=True)
    before = list(user.roles)
    if Role.ADMIN.value in before and Role.ADMIN not in roles and await _admin_count(session, lock=True) <= 1:
        raise LastAdmin("Give another user the admin role first: nobody could manage users after this.")
    user.roles = sorted({r.value for r in roles})
    user.company_id = company_id if Role.ISSUER in roles else None
    session.add(user)
    await session.flush()
    await trail.security_event(
        session,
        trail.ROLES_CHANGED,
        actor_id=actor_id,
        entity_type="user",
        entity_id=user.id,
        data={"before": before, "after": user.roles, "company_id": str(company_id) if company_id else None},
    )
    return user


async def _admin_count(session: AsyncSession, *, lock: bool = False) -> int:
    if lock:  # one role change or bootstrap at a time decides who the admins are
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _BOOTSTRAP_LOCK_KEY})
    count = await session.scalar(
        select(func.count()).select_from(User).where(col(User.roles).contains([Role.ADMIN.value]))
    )
    return int(count or 0)


async def ensure_bootstrap_admin(session: AsyncSession, *, email: str, password: str) -> User | None:
    """Create the configured admin when no admin exists; a no-op otherwise. Safe to run at every start.

    An account already registered under that email is never promoted: whoever registered it
    chose its password, so promoting it could hand the platform to a stranger.
    """
    if await _admin_count(session, lock=True):
        return None
    email = normalise_email(email)
    if await find_by_email(session, email) is not None:
        raise BootstrapEmailTaken(
            f"{email} is already registered by someone; set PAP_BOOTSTRAP_ADMIN_EMAIL to an unused address."
        )
    user = User(
        email=email, full_name="Administrator", password_hash=await hash_password(password), roles=[Role.ADMIN.value]
    )
    session.add(user)
    await session.flush()
    await trail.security_event(
        session, trail.ADMIN_BOOTSTRAPPED, actor_id=None, entity_type="user", entity_id=user.id, data={}
    )
    return user
