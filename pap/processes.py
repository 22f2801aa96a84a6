"""The long-running platform processes (`pap worker|relay|consumers|api`), with graceful shutdown."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

import structlog
import uvloop
from prometheus_client import start_http_server

from pap.resources import Resources, open_resources
from pap.settings import Settings
from pap.telemetry import configure

log = structlog.get_logger(__name__)

Main = Callable[[Resources, asyncio.Event], Awaitable[None]]


def run_process(settings: Settings, name: str, main: Main) -> None:
    """Run `main` until SIGINT/SIGTERM, with metrics on `PAP_METRICS_PORT` when it is free."""
    configure(settings, f"pap-{name}")

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            start_http_server(settings.metrics_port, addr="0.0.0.0")  # noqa: S104 (scraped by Prometheus)
        except OSError:
            log.info(
                "metrics port busy; this process exposes no /metrics",
                port=settings.metrics_port,
            )
        async with open_resources(settings) as resources:
            log.info("process started", process=name)
            await main(resources, stop)
        log.info("process stopped", process=name)

    uvloop.run(runner())


async def worker_main(resources: Resources, stop: asyncio.Event) -> None:
    from temporal.client import connect
    from workers.temporal_worker import run_worker

    settings = resources.settings
    client = await connect(settings.require("temporal_address"), settings.temporal_namespace)
    await run_worker(client, resources, stop)


async def relay_main(resources: Resources, stop: asyncio.Event) -> None:
    from events.kafka import create_producer
    from events.relay import OutboxRelay

    settings = resources.settings
    bootstrap = settings.require("kafka_bootstrap")
    relay = OutboxRelay(
        resources.engine,
        resources.sessions,
        lambda: create_producer(bootstrap, idempotent=settings.kafka_idempotent_producer),
        bootstrap,
        batch_size=settings.relay_batch_size,
        poll_interval=settings.relay_poll_interval_seconds,
    )
    await relay.run(stop)


async def consumers_main(resources: Resources, stop: asyncio.Event) -> None:
    from workers.consumers import run_consumers

    await run_consumers(resources, stop)
