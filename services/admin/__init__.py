"""Admin context: the append-only, hash-chained audit log (compliance holds and review queues come later)."""

from services.admin.audit import list_audit, record_audit, verify_chain

__all__ = ["list_audit", "record_audit", "verify_chain"]
