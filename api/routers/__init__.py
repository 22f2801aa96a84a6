"""One router per bounded context; `ROUTERS` is what the app includes."""

from fastapi import APIRouter

from api.routers import diagnostics, documents, health

ROUTERS: list[APIRouter] = [health.router, diagnostics.router, documents.router]
