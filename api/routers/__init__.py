"""One router per bounded context; `ROUTERS` is what the app includes."""

from fastapi import APIRouter

from api.routers import companies, diagnostics, health, holdings

ROUTERS: list[APIRouter] = [health.router, diagnostics.router, companies.router, holdings.router]
