"""One router per bounded context; `ROUTERS` is what the app includes."""

from fastapi import APIRouter

from api.routers import admin, diagnostics, health, identity, profiles, sandbox

ROUTERS: list[APIRouter] = [
    health.router,
    diagnostics.router,
    identity.router,
    admin.router,
    profiles.router,
    sandbox.router,
]
