"""Imports every table module so `SQLModel.metadata` is complete (for Alembic and tests)."""

from models import companies, deals, diagnostics, documents, holdings, payments, platform

__all__ = ["companies", "deals", "diagnostics", "documents", "holdings", "payments", "platform"]
