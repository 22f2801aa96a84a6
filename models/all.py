"""Imports every table module so `SQLModel.metadata` is complete (for Alembic and tests)."""

from models import (
    admin,
    companies,
    diagnostics,
    documents,
    holdings,
    identity,
    marketplace,
    payments,
    platform,
    profiles,
)

__all__ = [
    "admin",
    "companies",
    "diagnostics",
    "documents",
    "holdings",
    "identity",
    "marketplace",
    "payments",
    "platform",
    "profiles",
]
