"""Home, verification (KYC + accreditation), companies, holdings and orders pages.

State-changing steps reuse the API's router functions, so the browser obeys
exactly the rules (permissions, workflows started after commit) of `/v1`.
"""

from __future__ import annotations

import uuid
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError

from api.auth import require
from api.deps import RedisDep, SessionsDep, SettingsDep, TemporalDep
from api.routers import marketplace as market_api
from api.routers import profiles as profiles_api
from models.holdings import HoldingCreate
from models.marketplace import OrderCreate, OrderStatus, OrderUpdate
from models.profiles import AccreditationSubmit, KycSubmit
from pap.db import transaction
from services import companies, deals, holdings, marketplace, pricing, profiles
from services.errors import DomainError, Forbidden
from services.identity.permissions import Permission, permissions_of
from services.identity.tokens import Principal
from web.chart import price_chart
from web.core import Viewer, field_errors, first_submission, forget_submission, redirect, render

router = APIRouter()


async def home(request: Request, principal: Viewer, sessions: SessionsDep) -> Response:
    async with sessions() as session:
        my_deals = await deals.list_deals(session, principal, limit=50)
        kyc = await profiles.kyc_status(session, principal.user_id)
        accreditation = await profiles.accreditation_status(session, principal.user_id)
    return await render(request, "home.html", {"deals": my_deals, "kyc": kyc, "accreditation": accreditation})


@router.get("/verification")
async def verification(request: Request, principal: Viewer, sessions: SessionsDep) -> Response:
    return await verification_page(request, principal, sessions)


async def verification_page(request: Request, principal: Principal, sessions: SessionsDep, **extra: Any) -> Response:
    async with sessions() as session:
        eligibility = await profiles.buyer_eligibility(session, principal.user_id)
        kyc = await profiles.latest_kyc(session, principal.user_id)
        accreditations = await profiles.list_accreditations(session, principal.user_id)
        kyc_status = await profiles.kyc_status(session, principal.user_id)
        accreditation_status = await profiles.accreditation_status(session, principal.user_id)
    ctx = {
        "eligibility": eligibility,
        "kyc": kyc,
        "kyc_status": kyc_status,
        "accreditations": accreditations,
        "accreditation_status": accreditation_status,
        **extra,
    }
    return await render(request, "verification.html", ctx, status_code=422 if extra.get("errors") else 200)


@router.post("/verification/kyc")
async def submit_kyc(
    request: Request,
    principal: Viewer,
    sessions: SessionsDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    legal_name: Annotated[str, Form()] = "",
    date_of_birth: Annotated[str, Form()] = "",
    country: Annotated[str, Form()] = "",
    tax_id_last4: Annotated[str, Form()] = "",
) -> Response:
    form = {"legal_name": legal_name, "date_of_birth": date_of_birth, "country": country, "tax_id_last4": ""}
    try:
        body = KycSubmit.model_validate(
            {
                "legal_name": legal_name,
                "date_of_birth": date_of_birth,
                "country": country.strip().upper(),
                "tax_id_last4": tax_id_last4,
            }
        )
        await profiles_api.submit_kyc(body, principal, sessions, temporal, settings)
    except (DomainError, ValidationError) as error:
        return await verification_page(request, principal, sessions, errors=field_errors(error), form=form)
    return redirect("/app/verification")


@router.post("/verification/accreditation")
async def submit_accreditation(
    request: Request,
    principal: Viewer,
    sessions: SessionsDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    method: Annotated[str, Form()] = "",
) -> Response:
    try:
        body = AccreditationSubmit.model_validate({"method": method})
        await profiles_api.submit_accreditation(body, principal, sessions, temporal, settings)
    except (DomainError, ValidationError) as error:
        return await verification_page(request, principal, sessions, errors=field_errors(error))
    return redirect("/app/verification")


@router.get("/companies")
async def companies_page(request: Request, principal: Viewer, sessions: SessionsDep) -> Response:
    q = request.query_params.get("q", "")[:200] or None
    sector = request.query_params.get("sector", "")[:100] or None
    async with sessions() as session:
        page = await companies.list_companies(session, sector=sector, q=q, limit=100)
        sectors = sorted({c.sector for c in (await companies.list_companies(session, limit=100)).items})
    ctx = {"companies": page.items, "q": q or "", "sector": sector or "", "sectors": sectors}
    return await render(request, "companies.html", ctx)


@router.get("/companies/{company_id}")
async def company_page(company_id: uuid.UUID, request: Request, principal: Viewer, sessions: SessionsDep) -> Response:
    async with sessions() as session:
        company = await companies.get_company(session, company_id)
        metrics = await pricing.company_metrics(session, company_id)
        books = []
        for security in company.securities:
            series = await pricing.candles(session, security.id, pricing.Interval.DAY)
            book = await marketplace.order_book(session, security.id)
            books.append({"security": security, "book": book, "chart": price_chart(series), "candles": series})
    last_round = max(company.funding_rounds, key=lambda r: r.round_date, default=None)
    ctx = {"company": company, "metrics": metrics, "books": books, "last_round": last_round}
    return await render(request, "company.html", ctx)


async def _securities(session: Any) -> list[dict[str, Any]]:
    return [
        {"id": security_id, "label": f"{company} - {class_name}"}
        for security_id, company, class_name in await companies.tradable_securities(session)
    ]


@router.get("/holdings")
async def holdings_view(request: Request, principal: Viewer, sessions: SessionsDep) -> Response:
    return await holdings_page(request, principal, sessions)


async def holdings_page(request: Request, principal: Principal, sessions: SessionsDep, **extra: Any) -> Response:
    async with sessions() as session:
        page = await holdings.list_holdings(session, principal.user_id, limit=100)
        positions = []
        for holding in page.items:
            moves = await holdings.list_movements(session, principal, holding.id, limit=100)
            positions.append({"holding": holding, "movements": moves.items})
        securities = await _securities(session)
    labels = {str(s["id"]): s["label"] for s in securities}
    ctx = {"positions": positions, "securities": securities, "labels": labels, **extra}
    return await render(request, "holdings.html", ctx, status_code=422 if extra.get("errors") else 200)


def _money(amount: str, currency: str = "USD") -> dict[str, str] | None:
    return {"amount": amount.strip(), "currency": currency} if amount.strip() else None


@router.post("/holdings")
async def add_holding(
    request: Request,
    principal: Viewer,
    sessions: SessionsDep,
    security_id: Annotated[str, Form()] = "",
    quantity: Annotated[str, Form()] = "",
    cost_basis: Annotated[str, Form()] = "",
    acquisition_date: Annotated[str, Form()] = "",
    form_nonce: Annotated[str, Form()] = "",
) -> Response:
    form = {"security_id": security_id, "quantity": quantity, "cost_basis": cost_basis, "acquisition_date": ""}
    if not await first_submission(request, principal, form_nonce):
        return redirect("/app/holdings")  # already added by the first submission of this form
    try:
        if Permission.HOLDINGS_OWN not in permissions_of(set(principal.roles)):
            raise Forbidden("Your role cannot hold shares.")
        body = HoldingCreate.model_validate(
            {
                "security_id": security_id,
                "quantity": quantity,
                "cost_basis": _money(cost_basis),
                "acquisition_date": acquisition_date or None,
            }
        )
        async with transaction(sessions) as session:
            await holdings.submit_holding(session, principal.user_id, body)
    except (DomainError, ValidationError) as error:
        await forget_submission(request, principal, form_nonce)
        return await holdings_page(request, principal, sessions, errors=field_errors(error), form=form)
    return redirect("/app/holdings")


async def _orders_context(principal: Principal, sessions: SessionsDep) -> dict[str, Any]:
    async with sessions() as session:
        page = await marketplace.list_orders(session, principal, limit=100)
        securities = await _securities(session)
        my_deals = await deals.list_deals(session, principal, limit=100)
    by_order: dict[str, str] = {}
    for deal in my_deals:
        for order_id in (deal.buy_order_id, deal.sell_order_id):
            if order_id is not None:
                by_order[str(order_id)] = str(deal.id)
    labels = {str(s["id"]): s["label"] for s in securities}
    return {"orders": page.items, "securities": securities, "labels": labels, "deal_of": by_order}


@router.get("/orders")
async def orders_page(request: Request, principal: Viewer, sessions: SessionsDep) -> Response:
    return await render(request, "orders.html", await _orders_context(principal, sessions))


@router.post("/orders")
async def place_order(
    request: Request,
    principal: Viewer,
    sessions: SessionsDep,
    temporal: TemporalDep,
    redis: RedisDep,
    settings: SettingsDep,
    security_id: Annotated[str, Form()] = "",
    side: Annotated[str, Form()] = "",
    quantity: Annotated[str, Form()] = "",
    limit_price: Annotated[str, Form()] = "",
    min_quantity: Annotated[str, Form()] = "",
    form_nonce: Annotated[str, Form()] = "",
) -> Response:
    if not await first_submission(request, principal, form_nonce):
        return redirect("/app/orders")  # already placed by the first submission of this form
    form = {
        "security_id": security_id,
        "side": side,
        "quantity": quantity,
        "limit_price": limit_price,
        "min_quantity": min_quantity,
    }
    try:
        body = OrderCreate.model_validate(
            {
                "security_id": security_id,
                "side": side,
                "quantity": quantity,
                "limit_price": _money(limit_price) or {"amount": "", "currency": "USD"},
                "min_quantity": min_quantity or None,
            }
        )
        trader = await _trader(principal)
        await market_api.place_order(body, trader, sessions, temporal, redis, settings)
    except (DomainError, ValidationError) as error:
        await forget_submission(request, principal, form_nonce)
        ctx = await _orders_context(principal, sessions)
        return await render(
            request, "orders.html", {**ctx, "errors": field_errors(error), "form": form}, status_code=422
        )
    return redirect("/app/orders")


async def _trader(principal: Principal) -> Principal:
    check = require(Permission.ORDERS_PLACE)
    return await check(principal)


async def _order_row(
    request: Request, principal: Principal, sessions: SessionsDep, order_id: uuid.UUID, **extra: Any
) -> Response:
    """The viewer's order row; an unknown or foreign order is the 404 page (there is no row of theirs to show)."""
    ctx = await _orders_context(principal, sessions)
    async with sessions() as session:
        order = await marketplace.get_order_for(session, principal, order_id)
    return await render(request, "_order_row.html", {**ctx, "order": order, **extra})


@router.post("/orders/{order_id}/cancel")
async def cancel_order(
    order_id: uuid.UUID,
    request: Request,
    principal: Viewer,
    sessions: SessionsDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> Response:
    try:
        await market_api.cancel_order(order_id, principal, sessions, temporal, settings)
    except DomainError as error:
        return await _order_row(request, principal, sessions, order_id, row_error=error.detail)
    if request.headers.get("hx-request"):
        return await _order_row(request, principal, sessions, order_id)
    return redirect("/app/orders")


@router.post("/orders/{order_id}/amend")
async def amend_order(
    order_id: uuid.UUID,
    request: Request,
    principal: Viewer,
    sessions: SessionsDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    quantity: Annotated[str, Form()] = "",
    limit_price: Annotated[str, Form()] = "",
) -> Response:
    try:
        changes: dict[str, Any] = {}
        if quantity.strip():
            changes["quantity"] = quantity.strip()
        if limit_price.strip():
            Decimal(limit_price.strip())
            changes["limit_price"] = _money(limit_price)
        if not changes:
            return await _order_row(request, principal, sessions, order_id, row_error="Enter a new quantity or price.")
        body = OrderUpdate.model_validate(changes)
        await market_api.amend_order(order_id, body, principal, sessions, temporal, settings)
    except InvalidOperation:
        return await _order_row(request, principal, sessions, order_id, row_error="The price must be a number.")
    except (DomainError, ValidationError) as error:
        messages = field_errors(error)
        return await _order_row(request, principal, sessions, order_id, row_error="; ".join(messages.values()))
    if request.headers.get("hx-request"):
        return await _order_row(request, principal, sessions, order_id)
    return redirect("/app/orders")


LIVE = (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)
