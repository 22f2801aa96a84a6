"""Admin context: the hash-chained audit log, account freezes, review queues, exports and deal operations."""

from services.admin.audit import list_audit, record_audit, verify_chain
from services.admin.freeze import AccountFrozen, ensure_not_frozen, freeze_account, is_frozen, unfreeze_account

__all__ = [
    "AccountFrozen",
    "ensure_not_frozen",
    "freeze_account",
    "is_frozen",
    "list_audit",
    "record_audit",
    "unfreeze_account",
    "verify_chain",
]
