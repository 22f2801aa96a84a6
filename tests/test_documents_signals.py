"""Signatures reach the deal's workflow as `document_signed` / `document_declined` signals."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
from temporalio import workflow
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from models.documents import DocumentDeclined, DocumentSigned
from pap.db import SessionFactory
from pap.settings import Settings
from pap.storage import LocalObjectStore
from services import documents
from services.identity.permissions import Role
from temporal.ids import deal_workflow_id
from tests.test_documents import generate, make_deal, sign_body


@workflow.defn(sandboxed=False)
class DealSignalsProbe:
    """Stands in for DealExecution: collects document signals until the envelope completes or is declined."""

    def __init__(self) -> None:
        self.signed: list[DocumentSigned] = []
        self.declined: list[DocumentDeclined] = []

    @workflow.run
    async def run(self) -> list[str]:
        await workflow.wait_condition(lambda: any(s.completed for s in self.signed) or bool(self.declined))
        return [f"signed:{s.signer_id}:{s.completed}" for s in self.signed] + [
            f"declined:{d.signer_id}:{d.reason}" for d in self.declined
        ]

    @workflow.signal(name="document_signed")
    def document_signed(self, signal: DocumentSigned) -> None:
        self.signed.append(signal)

    @workflow.signal(name="document_declined")
    def document_declined(self, signal: DocumentDeclined) -> None:
        self.declined.append(signal)


async def test_each_signature_signals_the_deal_workflow_and_the_last_one_completes(
    api: httpx.AsyncClient,
    sessions: SessionFactory,
    settings: Settings,
    token_for: Callable[..., dict[str, str]],
) -> None:
    store = LocalObjectStore(settings.state_dir / "objects")
    deal = make_deal()
    doc = await generate(sessions, store, deal)
    queue = f"documents-probe-{uuid.uuid4()}"
    # A plain client for the probe worker: the platform client's tracing plugin needs the worker process's tracer.
    plain = await Client.connect(
        settings.require("temporal_address"),
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )
    async with Worker(plain, task_queue=queue, workflows=[DealSignalsProbe]):
        handle = await plain.start_workflow(
            DealSignalsProbe.run, id=deal_workflow_id(deal.terms.deal_id), task_queue=queue
        )
        for signer in (deal.seller, deal.buyer):
            response = await api.post(
                f"/v1/documents/{doc.id}/sign",
                json=sign_body(signer.name),
                headers=token_for(signer.user_id, Role.INVESTOR),
            )
            assert response.status_code == 200
        assert await handle.result() == [f"signed:{deal.seller.user_id}:False", f"signed:{deal.buyer.user_id}:True"]


async def test_signal_to_a_deal_without_a_workflow_is_not_an_error(temporal_client: Client) -> None:
    delivered = await documents.signal_deal(
        temporal_client,
        DocumentDeclined(document_id=uuid.uuid4(), deal_id=uuid.uuid4(), signer_id=uuid.uuid4(), reason="no"),
    )
    assert delivered is False
