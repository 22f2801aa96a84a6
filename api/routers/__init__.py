"""One router per bounded context; `ROUTERS` is what the app includes."""

from fastapi import APIRouter

from api.routers import companies, deals, diagnostics, documents, health, holdings, payments, reconciliation

ROUTERS: list[APIRouter] = [
    health.router,
    diagnostics.router,
    companies.router,
    holdings.router,
    documents.router,
    deals.router,
    payments.router,
    payments.sandbox_router,
    reconciliation.router,
]
