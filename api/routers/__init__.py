"""One router per bounded context; `ROUTERS` is what the app includes."""

from fastapi import APIRouter

from api.routers import (
    admin,
    companies,
    deals,
    diagnostics,
    documents,
    health,
    holdings,
    identity,
    payments,
    profiles,
    reconciliation,
    sandbox,
)

ROUTERS: list[APIRouter] = [
    health.router,
    diagnostics.router,
    identity.router,
    admin.router,
    profiles.router,
    companies.router,
    holdings.router,
    documents.router,
    deals.router,
    payments.router,
    reconciliation.router,
    sandbox.router,
    payments.sandbox_router,
]
