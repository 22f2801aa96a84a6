"""Documents context: deal documents rendered to PDF, stored with SHA-256, and signed electronically."""

from services.documents.documents import (
    document_bytes,
    generate_document,
    get_document,
    list_deal_documents,
    read_content,
    signature_events,
)
from services.documents.errors import (
    AlreadySigned,
    DocumentIntegrityError,
    DocumentNotFound,
    DocumentNotSignable,
    NotYourTurn,
    SigningLinkGone,
)
from services.documents.provider import BuiltinSignatureProvider, SignatureProvider
from services.documents.signing import (
    SignOutcome,
    create_signing_link,
    decline_document,
    send_reminder,
    sign_document,
    sign_with_link,
    signing_link_document,
    view_signing_link,
    void_signature_requests,
)
from services.documents.workflow_signals import signal_deal

__all__ = [
    "AlreadySigned",
    "BuiltinSignatureProvider",
    "DocumentIntegrityError",
    "DocumentNotFound",
    "DocumentNotSignable",
    "NotYourTurn",
    "SignOutcome",
    "SignatureProvider",
    "SigningLinkGone",
    "create_signing_link",
    "decline_document",
    "document_bytes",
    "generate_document",
    "get_document",
    "list_deal_documents",
    "read_content",
    "send_reminder",
    "sign_document",
    "sign_with_link",
    "signal_deal",
    "signature_events",
    "signing_link_document",
    "view_signing_link",
    "void_signature_requests",
]
