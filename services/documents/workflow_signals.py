"""Telling the deal's workflow about signatures; sent after the transaction commits."""

from __future__ import annotations

import structlog
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from models.documents import DocumentDeclined, DocumentSigned
from temporal.ids import deal_workflow_id

log = structlog.get_logger(__name__)

DOCUMENT_SIGNED_SIGNAL = "document_signed"
DOCUMENT_DECLINED_SIGNAL = "document_declined"


async def signal_deal(client: Client, outcome: DocumentSigned | DocumentDeclined) -> bool:
    """Signal `deal-{deal_id}`; a deal without a running workflow is logged, not an error. True when delivered."""
    name = DOCUMENT_SIGNED_SIGNAL if isinstance(outcome, DocumentSigned) else DOCUMENT_DECLINED_SIGNAL
    workflow_id = deal_workflow_id(outcome.deal_id)
    try:
        await client.get_workflow_handle(workflow_id).signal(name, outcome)
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        log.info("no deal workflow to signal", workflow_id=workflow_id, signal=name)
        return False
    return True
