"""Roles and the permissions they grant, in one place (RBAC)."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    INVESTOR = "investor"
    ISSUER = "issuer"
    DEAL_MANAGER = "deal_manager"
    COMPLIANCE = "compliance"
    ADMIN = "admin"


PRIVILEGED_ROLES = frozenset({Role.DEAL_MANAGER, Role.COMPLIANCE, Role.ADMIN})
"""Roles that must enrol MFA before their privileged endpoints answer."""


class Permission(StrEnum):
    ORDERS_PLACE = "orders:place"
    ORDERS_READ_ALL = "orders:read_all"
    HOLDINGS_OWN = "holdings:own"
    HOLDINGS_VERIFY = "holdings:verify"
    COMPANIES_MANAGE = "companies:manage"
    DEALS_MANAGE = "deals:manage"
    DEALS_READ_ALL = "deals:read_all"
    ISSUER_DECIDE = "issuer:decide"
    COMPLIANCE_REVIEW = "compliance:review"
    AUDIT_READ = "audit:read"
    USERS_MANAGE = "users:manage"
    OPS_OPERATE = "ops:operate"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.INVESTOR: frozenset({Permission.ORDERS_PLACE, Permission.HOLDINGS_OWN}),
    Role.ISSUER: frozenset({Permission.HOLDINGS_VERIFY, Permission.ISSUER_DECIDE}),
    Role.DEAL_MANAGER: frozenset(
        {Permission.DEALS_MANAGE, Permission.DEALS_READ_ALL, Permission.ORDERS_READ_ALL, Permission.ISSUER_DECIDE}
    ),
    Role.COMPLIANCE: frozenset(
        {
            Permission.COMPLIANCE_REVIEW,
            Permission.HOLDINGS_VERIFY,
            Permission.AUDIT_READ,
            Permission.DEALS_READ_ALL,
            Permission.ORDERS_READ_ALL,
            Permission.OPS_OPERATE,
        }
    ),
    Role.ADMIN: frozenset(
        {Permission.USERS_MANAGE, Permission.COMPANIES_MANAGE, Permission.AUDIT_READ, Permission.OPS_OPERATE}
    ),
}


def permissions_of(roles: frozenset[Role] | set[Role]) -> frozenset[Permission]:
    granted: set[Permission] = set()
    for role in roles:
        granted |= ROLE_PERMISSIONS[role]
    return frozenset(granted)
