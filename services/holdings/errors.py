"""Errors of the holdings context.

InvalidInput (422)
├── InsufficientShares        insufficient-shares
├── MoreThanFullyDiluted      more-than-fully-diluted
└── UnknownSecurity           unknown-security
NotFound (404)
├── HoldingNotFound           holding-not-found
└── ReservationNotFound       reservation-not-found
Conflict (409)
├── HoldingAlreadyDecided     holding-already-decided
├── VerifiedBeyondFullyDiluted verified-beyond-fully-diluted
└── ReservationConflict       reservation-conflict
Forbidden (403)
└── NotHoldingVerifier        not-holding-verifier
"""

from __future__ import annotations

from services.errors import Conflict, Forbidden, InvalidInput, NotFound


class InsufficientShares(InvalidInput):
    type = "insufficient-shares"
    title = "Not enough verified unreserved shares"


class MoreThanFullyDiluted(InvalidInput):
    type = "more-than-fully-diluted"
    title = "More shares than the company has"


class VerifiedBeyondFullyDiluted(Conflict):
    type = "verified-beyond-fully-diluted"
    title = "Verifying this holding would exceed the company's fully diluted shares"


class UnknownSecurity(InvalidInput):
    type = "unknown-security"
    title = "The security does not exist"


class HoldingNotFound(NotFound):
    type = "holding-not-found"
    title = "Holding not found"


class ReservationNotFound(NotFound):
    type = "reservation-not-found"
    title = "Reservation not found"


class HoldingAlreadyDecided(Conflict):
    type = "holding-already-decided"
    title = "The holding was already verified or rejected"


class ReservationConflict(Conflict):
    type = "reservation-conflict"
    title = "The reservation cannot do this in its current state"


class NotHoldingVerifier(Forbidden):
    type = "not-holding-verifier"
    title = "Only compliance or the company's issuer may decide on this holding"
