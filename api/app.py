"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from api.deal_changes import open_deal_changes
from api.idempotency import IdempotencyMiddleware
from api.middleware import RequestContextMiddleware
from api.openapi import install_openapi
from api.problems import install_problem_handlers
from api.routers import ROUTERS
from api.state import AppState
from pap.db import SessionFactory, transaction
from pap.pg_notify import asyncpg_dsn
from pap.resources import open_resources
from pap.settings import Settings, get_settings
from pap.telemetry import configure
from services.identity import ensure_bootstrap_admin
from services.identity.tokens import KeyRing
from web import install as install_web

log = structlog.get_logger(__name__)


async def _bootstrap_admin(settings: Settings, sessions: SessionFactory) -> None:
    """Create the first admin from PAP_BOOTSTRAP_ADMIN_* when no admin exists (idempotent, every start)."""
    if not settings.bootstrap_admin_email or settings.bootstrap_admin_password is None:
        return
    try:
        async with transaction(sessions) as session:
            created = await ensure_bootstrap_admin(
                session,
                email=settings.bootstrap_admin_email,
                password=settings.bootstrap_admin_password.get_secret_value(),
            )
        if created is not None:
            log.info("bootstrap admin created", user_id=str(created.id))
    except Exception:  # the API must start (and report not-ready) even while the database is away
        log.exception("bootstrap admin failed")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure(settings, "pap-api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            open_resources(settings) as resources,
            open_deal_changes(asyncpg_dsn(resources.engine.url)) as changes,
        ):
            keyring = KeyRing.load(settings.state_dir / "keys", settings.jwt_private_key_file)
            app.state.pap = AppState(resources, keyring, changes)
            await _bootstrap_admin(settings, resources.sessions)
            yield

    app = FastAPI(
        title="Private Assets Platform",
        version="1.0.0",
        description="Secondary trading of private-company shares; every deal is a durable Temporal workflow.",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    app.add_middleware(IdempotencyMiddleware, sessions=lambda: app.state.pap.resources.sessions)
    app.add_middleware(RequestContextMiddleware, start_spans=not settings.otlp_endpoint)
    for router in ROUTERS:
        app.include_router(router)
    install_web(app)
    install_openapi(app)
    if settings.otlp_endpoint:
        # Full HTTP spans only when they are exported; otherwise RequestContextMiddleware joins the
        # caller's trace itself, at a tenth of the instrumentation's cost per request.
        # The reset page's URL carries a live reset token: no span records it.
        FastAPIInstrumentor.instrument_app(app, excluded_urls="health/live,metrics,app/password-reset/confirm")
    return app
