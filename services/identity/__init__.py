"""Identity and access: users, credentials, sessions, MFA, roles and the tokens that carry them."""

from services.identity.mfa import confirm_totp, start_totp
from services.identity.sessions import (
    IssuedTokens,
    list_sessions,
    mfa_login,
    password_login,
    refresh,
    revoke_all_sessions,
    revoke_session,
    upgrade_to_mfa,
)
from services.identity.throttling import check_login_allowed, clear_account_failures, record_login_failure
from services.identity.users import (
    ensure_bootstrap_admin,
    get_user,
    normalise_email,
    register,
    set_roles,
    to_read,
)

__all__ = [
    "IssuedTokens",
    "check_login_allowed",
    "clear_account_failures",
    "confirm_totp",
    "ensure_bootstrap_admin",
    "get_user",
    "list_sessions",
    "mfa_login",
    "normalise_email",
    "password_login",
    "record_login_failure",
    "refresh",
    "register",
    "revoke_all_sessions",
    "revoke_session",
    "set_roles",
    "start_totp",
    "to_read",
    "upgrade_to_mfa",
]
