"""The deal page: timeline, who acts next, documents to read and sign, funding instructions, live updates."""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from pydantic_core import to_json
from temporalio.service import RPCError

from api.deps import SessionsDep, SettingsDep, StoreDep, TemporalDep
from api.routers import deals as deals_api
from api.routers.documents import pdf_response, request_context
from models.deals import DealStage, DealState
from models.documents import SignBody
from pap.db import transaction
from services import deals, documents, payments
from services.errors import DomainError
from services.identity.tokens import Principal
from temporal.ids import deal_workflow_id
from web.core import Viewer, redirect, render

router = APIRouter()

STAGE_LABELS = {
    DealStage.CREATED: "Created",
    DealStage.PARTICIPANTS_CONFIRMED: "Participants confirmed",
    DealStage.AWAITING_ISSUER: "Awaiting the issuer (right of first refusal)",
    DealStage.DOCUMENTS_GENERATED: "Documents generated",
    DealStage.AWAITING_SIGNATURES: "Awaiting signatures",
    DealStage.AWAITING_FUNDING: "Awaiting funding",
    DealStage.SETTLING: "Settling",
    DealStage.CLOSED: "Closed",
    DealStage.CANCELLED: "Cancelled",
}
PATH = [s for s in DealStage if s is not DealStage.CANCELLED]


async def _context_for(
    deal_id: uuid.UUID, principal: Principal, sessions: SessionsDep, temporal: TemporalDep
) -> dict[str, Any]:
    async with sessions() as session:
        read = await deals_api.deal_read(session, await deals.deal_for_viewer(session, deal_id, principal), principal)
    live: DealState | None = None
    try:
        live = await temporal.get_workflow_handle(deal_workflow_id(deal_id)).query("state", result_type=DealState)
    except RPCError:
        live = None  # a finished workflow may be gone from visibility; the projection still answers
    role = "seller" if principal.user_id == read.seller_id else "buyer" if principal.user_id == read.buyer_id else ""
    funding = None
    if role == "buyer" and read.stage == DealStage.AWAITING_FUNDING:
        async with sessions() as session:
            funding = await payments.open_funding(session, deal_id=deal_id, payer_id=principal.user_id)
    docs = []
    for doc in read.documents:
        mine = next((s for s in doc["signers"] if s["user_id"] == str(principal.user_id)), None)
        earlier = [s for s in doc["signers"] if mine and s["order"] < mine["order"] and s["status"] != "signed"]
        can_sign = bool(mine and mine["status"] == "pending" and not earlier and doc["status"] != "signed")
        docs.append({**doc, "mine": mine, "can_sign": can_sign, "label": doc["kind"].replace("_", " ").capitalize()})
    reached = {entry.stage for entry in read.timeline}
    return {
        "version": hashlib.sha256(to_json([read, live, funding, role])).hexdigest()[:32],
        "deal": read,
        "live": live,
        "role": role,
        "funding": funding,
        "docs": docs,
        "path": [{"stage": s, "label": STAGE_LABELS[s], "done": s.value in reached} for s in PATH],
        "stage_label": STAGE_LABELS[read.stage],
    }


@router.get("/deals/{deal_id}")
async def deal_page(
    deal_id: uuid.UUID, request: Request, principal: Viewer, sessions: SessionsDep, temporal: TemporalDep
) -> Response:
    ctx = await _context_for(deal_id, principal, sessions, temporal)
    return await render(request, "deal.html", ctx)


@router.get("/deals/{deal_id}/live")
async def deal_live(
    deal_id: uuid.UUID,
    request: Request,
    principal: Viewer,
    sessions: SessionsDep,
    temporal: TemporalDep,
    v: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """The fragment htmx polls every 5 s; `v` is the version the page shows. An unchanged deal answers
    204, which htmx does not swap in, so a signature being typed is not wiped every 5 s."""
    ctx = await _context_for(deal_id, principal, sessions, temporal)
    if v == ctx["version"]:
        return Response(status_code=204)
    return await render(request, "_deal_live.html", ctx)


@router.post("/deals/{deal_id}/documents/{document_id}/sign")
async def sign(
    deal_id: uuid.UUID,
    document_id: uuid.UUID,
    request: Request,
    principal: Viewer,
    sessions: SessionsDep,
    temporal: TemporalDep,
    store: StoreDep,
    settings: SettingsDep,
    signature_name: Annotated[str, Form()] = "",
    consent: Annotated[str, Form()] = "",
) -> Response:
    errors: dict[str, str] = {}
    try:
        body = SignBody.model_validate({"signature_name": signature_name, "consent": consent == "yes"})
    except ValidationError as invalid:
        fields = {str(e["loc"][0]) for e in invalid.errors() if e["loc"]}
        if "signature_name" in fields:
            errors["signature_name"] = "Type your full name to sign (one line, at most 256 characters)."
        if "consent" in fields:
            errors["consent"] = "Tick the box to consent to signing electronically."
    if not errors:
        try:
            async with transaction(sessions) as session:
                await documents.get_document(session, principal, document_id)
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
        except DomainError as error:
            errors["_"] = error.detail
    if errors:
        ctx = await _context_for(deal_id, principal, sessions, temporal)
        ctx.update(sign_errors={str(document_id): errors})
        return await render(request, "deal.html", ctx, status_code=422)
    return redirect(f"/app/deals/{deal_id}")


@router.get("/documents/{document_id}/content")
async def document_content(
    document_id: uuid.UUID,
    principal: Viewer,
    sessions: SessionsDep,
    store: StoreDep,
    version: Literal["original", "signed"] = "original",
) -> Response:
    """The PDF, with the same participant check as `GET /v1/documents/{id}/content`."""
    async with sessions() as session:
        data = await documents.read_content(session, store, principal, document_id, version)
    return pdf_response(data, document_id, version)
