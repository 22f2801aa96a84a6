"""Documents: metadata, integrity-checked PDF content, signing (authenticated or by one-time link) and declining.

`GET /v1/deals/{id}/documents` belongs to the deals router, which calls
`services.documents.list_deal_documents`.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.auth import CurrentUser
from api.deps import SessionDep, SessionsDep, SettingsDep, StoreDep, TemporalDep
from models.documents import (
    DeclineBody,
    DocumentRead,
    RequestContext,
    SignatureEventRead,
    SignBody,
    SigningLinkView,
    SignResult,
)
from pap.db import transaction
from services import documents

router = APIRouter(tags=["documents"])

Version = Annotated[Literal["original", "signed"], Query(description="`signed` = the executed, PAdES-sealed copy")]


def request_context(request: Request) -> RequestContext:
    return RequestContext(
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


def pdf_response(data: bytes, document_id: uuid.UUID, version: str) -> Response:
    return Response(
        content=data,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="{document_id}-{version}.pdf"',
            "Cache-Control": "private, no-store",
        },
    )


@router.get("/v1/documents/{document_id}")
async def get_document(document_id: uuid.UUID, principal: CurrentUser, session: SessionDep) -> DocumentRead:
    return await documents.get_document(session, principal, document_id)


@router.get(
    "/v1/documents/{document_id}/content",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
async def get_document_content(
    document_id: uuid.UUID,
    principal: CurrentUser,
    session: SessionDep,
    store: StoreDep,
    version: Version = "original",
) -> Response:
    data = await documents.read_content(session, store, principal, document_id, version)
    return pdf_response(data, document_id, version)


@router.get("/v1/documents/{document_id}/events")
async def get_signature_events(
    document_id: uuid.UUID, principal: CurrentUser, session: SessionDep
) -> list[SignatureEventRead]:
    """The signing audit trail, for the document's participants."""
    await documents.get_document(session, principal, document_id)
    return await documents.signature_events(session, document_id)


@router.post("/v1/documents/{document_id}/sign")
async def sign_document(
    document_id: uuid.UUID,
    body: SignBody,
    request: Request,
    principal: CurrentUser,
    sessions: SessionsDep,
    store: StoreDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> SignResult:
    async with transaction(sessions) as session:
        outcome = await documents.sign_document(
            session,
            store,
            settings.state_dir / "keys",
            document_id=document_id,
            user_id=principal.user_id,
            signature_name=body.signature_name,
            ctx=request_context(request),
        )
    await documents.signal_deal(temporal, outcome.signal)
    return outcome.result


@router.post("/v1/documents/{document_id}/decline")
async def decline_document(
    document_id: uuid.UUID,
    body: DeclineBody,
    request: Request,
    principal: CurrentUser,
    sessions: SessionsDep,
    temporal: TemporalDep,
) -> DocumentRead:
    async with transaction(sessions) as session:
        declined = await documents.decline_document(
            session,
            document_id=document_id,
            user_id=principal.user_id,
            reason=body.reason,
            ctx=request_context(request),
        )
        read = await documents.get_document(session, principal, document_id)
    await documents.signal_deal(temporal, declined)
    return read


@router.get("/v1/sign/{token}")
async def view_signing_link(token: str, request: Request, session: SessionDep) -> SigningLinkView:
    """What an emailed signing link asks its holder to sign (no bearer token: the link is the credential)."""
    return await documents.view_signing_link(session, token, request_context(request))


@router.get(
    "/v1/sign/{token}/content",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
async def signing_link_content(token: str, session: SessionDep, store: StoreDep) -> Response:
    document = await documents.signing_link_document(session, token)
    data = await documents.document_bytes(store, document, "original")
    return pdf_response(data, document.id, "original")


@router.post("/v1/sign/{token}")
async def sign_with_link(
    token: str,
    body: SignBody,
    request: Request,
    sessions: SessionsDep,
    store: StoreDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> SignResult:
    async with transaction(sessions) as session:
        outcome = await documents.sign_with_link(
            session,
            store,
            settings.state_dir / "keys",
            token=token,
            signature_name=body.signature_name,
            ctx=request_context(request),
        )
    await documents.signal_deal(temporal, outcome.signal)
    return outcome.result
