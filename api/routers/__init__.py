"""One router per bounded context; `ROUTERS` is what the app includes."""

from fastapi import APIRouter

from api.routers import diagnostics, health, payments, reconciliation

ROUTERS: list[APIRouter] = [
    health.router,
    diagnostics.router,
    payments.router,
    payments.sandbox_router,
    reconciliation.router,
]
