"""Imports every table module so `SQLModel.metadata` is complete (for Alembic and tests)."""

from models import diagnostics, documents, platform

__all__ = ["diagnostics", "documents", "platform"]
