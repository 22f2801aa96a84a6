"""Admin context: the append-only, hash-chained audit log and cross-context operations views such as reconciliation."""

from services.admin.audit import list_audit, record_audit, verify_chain

__all__ = ["list_audit", "record_audit", "verify_chain"]
