"""Authentication and authorization dependencies: who is calling, and may they do this.

`CurrentUser` verifies the bearer token; `require(Permission.X)` adds a
permission check (and, for privileged roles, the MFA requirement). Object
ownership is checked by the services with the principal they are given.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import StateDep
from services.errors import Forbidden, Unauthenticated
from services.identity.permissions import PRIVILEGED_ROLES, Permission, permissions_of
from services.identity.tokens import Principal

bearer = HTTPBearer(auto_error=False, description="An access token from POST /v1/auth/token")


class MfaRequired(Forbidden):
    type = "mfa-required"
    title = "Multi-factor authentication required"


async def current_principal(
    request: Request,
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("A bearer access token is required.")
    principal = state.keyring.verify(credentials.credentials)
    if await state.is_revoked(principal):
        raise Unauthenticated("The session of this token has ended.")
    request.state.principal = principal
    return principal


CurrentUser = Annotated[Principal, Depends(current_principal)]


def require(permission: Permission) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that admits callers whose roles grant `permission` (privileged roles need MFA)."""

    async def check(principal: CurrentUser) -> Principal:
        granting = {role for role in principal.roles if permission in permissions_of({role})}
        if not granting:
            raise Forbidden(f"This needs the {permission.value} permission.")
        if granting <= PRIVILEGED_ROLES and not principal.mfa:
            raise MfaRequired("Enrol and use MFA (POST /v1/auth/mfa/totp) before using privileged endpoints.")
        return principal

    return check
