"""One router per bounded context; `ROUTERS` is what the app includes."""

from fastapi import APIRouter

from api.routers import (
    admin,
    companies,
    compliance,
    deals,
    diagnostics,
    documents,
    health,
    holdings,
    identity,
    marketplace,
    notifications,
    ops,
    payments,
    pricing,
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
    sandbox.router,
    companies.router,
    holdings.router,
    marketplace.router,
    documents.router,
    deals.router,
    payments.router,
    payments.sandbox_router,
    reconciliation.router,
    pricing.router,
    notifications.router,
    notifications.sandbox_router,
    compliance.router,
    ops.router,
]
