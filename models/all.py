"""Imports every table module so `SQLModel.metadata` is complete (for Alembic and tests)."""

from models import admin, diagnostics, identity, platform, profiles

__all__ = ["admin", "diagnostics", "identity", "platform", "profiles"]
