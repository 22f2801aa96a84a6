"""Errors of the documents context.

NotFound
└── DocumentNotFound (404)         absent, or the caller is not a participant
Conflict
├── DocumentIntegrityError (409)   stored bytes do not match the recorded SHA-256
├── NotYourTurn (409)              an earlier signer in the signing order has not signed
├── AlreadySigned (409)
└── DocumentNotSignable (409)      the envelope is not awaiting signatures
SigningLinkGone (410)              the one-time link was used or has expired
"""

from __future__ import annotations

from services.errors import Conflict, DomainError, NotFound


class DocumentNotFound(NotFound):
    type = "document-not-found"
    title = "Document not found"


class DocumentIntegrityError(Conflict):
    type = "document-integrity"
    title = "The stored document failed its integrity check"


class NotYourTurn(Conflict):
    type = "not-your-turn"
    title = "An earlier signer has not signed yet"


class AlreadySigned(Conflict):
    type = "already-signed"
    title = "Already signed"


class DocumentNotSignable(Conflict):
    type = "document-not-signable"
    title = "The document is not awaiting signatures"


class SigningLinkGone(DomainError):
    status = 410
    type = "signing-link-gone"
    title = "The signing link was already used or has expired"
