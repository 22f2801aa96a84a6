"""Why a transfer of a security is refused by its company's rules (all fixable 422s for the client).

InvalidInput (422)
└── TransferNotAllowed            transfer-not-allowed
    ├── SecurityNotTradable       security-not-tradable
    ├── LockUpActive              lock-up-active
    ├── TransferBlackout          transfer-blackout
    └── BelowMinimumTransfer      below-minimum-transfer
"""

from __future__ import annotations

from services.errors import InvalidInput, NotFound


class CompanyNotFound(NotFound):
    type = "company-not-found"
    title = "Company not found"


class SecurityNotFound(NotFound):
    type = "security-not-found"
    title = "Security not found"


class TransferNotAllowed(InvalidInput):
    type = "transfer-not-allowed"
    title = "The company's transfer policy does not allow this transfer"


class SecurityNotTradable(TransferNotAllowed):
    type = "security-not-tradable"
    title = "This security is not tradable"


class LockUpActive(TransferNotAllowed):
    type = "lock-up-active"
    title = "The lock-up period is not over"


class TransferBlackout(TransferNotAllowed):
    type = "transfer-blackout"
    title = "Transfers are in a blackout window"


class BelowMinimumTransfer(TransferNotAllowed):
    type = "below-minimum-transfer"
    title = "Below the minimum transfer size"
