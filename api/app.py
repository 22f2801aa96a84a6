"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from api.idempotency import IdempotencyMiddleware
from api.middleware import RequestContextMiddleware
from api.problems import install_problem_handlers
from api.routers import ROUTERS
from api.state import AppState
from pap.resources import open_resources
from pap.settings import Settings, get_settings
from pap.telemetry import configure
from services.identity.tokens import KeyRing


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure(settings, "pap-api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_resources(settings) as resources:
            keyring = KeyRing.load(settings.state_dir / "keys", settings.jwt_private_key_file)
            app.state.pap = AppState(resources, keyring)
            yield

    app = FastAPI(
        title="Private Assets Platform",
        version="1.0.0",
        description="Secondary trading of private-company shares; every deal is a durable Temporal workflow.",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    app.add_middleware(IdempotencyMiddleware, sessions=lambda: app.state.pap.resources.sessions)
    app.add_middleware(RequestContextMiddleware)
    for router in ROUTERS:
        app.include_router(router)
    FastAPIInstrumentor.instrument_app(app, excluded_urls="health/live,metrics")
    return app
