"""Imports every table module so `SQLModel.metadata` is complete (for Alembic and tests)."""

from models import diagnostics, payments, platform

__all__ = ["diagnostics", "payments", "platform"]
