"""Identity and access: users, credentials, sessions, MFA, roles and the tokens that carry them."""

from services.identity.mfa import confirm_totp, start_totp
from services.identity.password_change import change_password
from services.identity.password_reset import request_password_reset, reset_password
from services.identity.sessions import (
    IssuedTokens,
    change_roles,
    list_sessions,
    mfa_login,
    password_login,
    refresh,
    revoke_all_sessions,
    revoke_session,
    upgrade_to_mfa,
)
from services.identity.throttling import reserve_login_attempt, settle_login_attempt, take_registration_slot
from services.identity.users import (
    ensure_bootstrap_admin,
    get_user,
    normalise_email,
    register,
    to_read,
)

__all__ = [
    "IssuedTokens",
    "change_password",
    "change_roles",
    "confirm_totp",
    "ensure_bootstrap_admin",
    "get_user",
    "list_sessions",
    "mfa_login",
    "normalise_email",
    "password_login",
    "refresh",
    "register",
    "request_password_reset",
    "reserve_login_attempt",
    "reset_password",
    "revoke_all_sessions",
    "revoke_session",
    "settle_login_attempt",
    "start_totp",
    "take_registration_slot",
    "to_read",
    "upgrade_to_mfa",
]
