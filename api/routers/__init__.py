"""One router per bounded context; `ROUTERS` is what the app includes."""

from fastapi import APIRouter

from api.routers import (
    admin,
    companies,
    diagnostics,
    documents,
    health,
    holdings,
    identity,
    marketplace,
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
    marketplace.router,
    documents.router,
    payments.router,
    reconciliation.router,
    sandbox.router,
    payments.sandbox_router,
]
