"""The `pap` command line: the embedded stack, the platform's processes and operations."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Callable

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.live import Live
from rich.table import Table

from pap.cli_api import login
from pap.cli_deals import deals_app
from pap.cli_ops import register_ops_commands
from pap.settings import Settings, attach_running_stack, get_settings

app = typer.Typer(help="Private Assets Platform", no_args_is_help=True, add_completion=False)
UP_API_WORKERS = 2
"""API processes `pap up` starts when PAP_API_WORKERS is unset (order placement is CPU-bound in Python)."""
console = Console(stderr=True)


def load_settings(*, beside_running_stack: bool = False) -> Settings:
    """Settings, or a one-line explanation per bad value and exit code 2.

    Commands run next to `make up` (seed, migrate, dlq, pricing) take the addresses
    it wrote to `.pap/stack.json` for whatever the environment leaves unset.
    """
    try:
        settings = get_settings()
        return attach_running_stack(settings) if beside_running_stack else settings
    except ValidationError as error:
        for problem in error.errors():
            name = "PAP_" + "_".join(str(p) for p in problem["loc"]).upper() if problem["loc"] else "settings"
            console.print(f"[red]bad setting[/red] {name}: {problem['msg']}")
        raise typer.Exit(2) from None


@app.command()
def up() -> None:
    """Start the whole platform on embedded components; Ctrl-C stops everything."""
    from pap.stack.embedded import EmbeddedStack
    from pap.stack.ports import PortInUse
    from pap.stack.supervisor import ComponentFailed
    from pap.telemetry import configure_logging

    settings = load_settings()
    if settings.api_workers is None:
        settings = settings.model_copy(update={"api_workers": UP_API_WORKERS})
    configure_logging(settings)
    statuses: dict[str, str] = {}
    started = time.monotonic()

    def render() -> Table:
        table = Table(title="Private Assets Platform", show_header=False, box=None)
        for name, status in statuses.items():
            colour = "green" if status in ("ready", "done") or status.startswith("using") else "yellow"
            table.add_row(name, f"[{colour}]{status}[/{colour}]")
        return table

    async def main() -> None:
        stack = EmbeddedStack(settings, progress=lambda n, s: statuses.__setitem__(n, s))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            with Live(render(), console=console, refresh_per_second=8, transient=False) as live:
                refresher = asyncio.create_task(_refresh(live, render))
                try:
                    stack.check_api_port()
                    await stack.start_infrastructure()
                    await stack.prepare()
                    await stack.start_platform()
                finally:
                    refresher.cancel()
                    live.update(render())
            stack.write_stack_file(settings.state_dir / "stack.json")
            _print_addresses(stack.addresses(), time.monotonic() - started)
            await stop.wait()
        except (ComponentFailed, PortInUse, RuntimeError) as error:
            console.print(f"[red]pap up failed:[/red] {error}")
            raise typer.Exit(1) from None
        finally:
            console.print("stopping…")
            await stack.stop()
            with contextlib.suppress(FileNotFoundError):
                (settings.state_dir / "stack.json").unlink()
            console.print("stopped")

    asyncio.run(main())


async def _refresh(live: Live, render: Callable[[], Table]) -> None:
    while True:
        live.update(render())
        await asyncio.sleep(0.125)


def _print_addresses(addresses: dict[str, str], elapsed: float) -> None:
    table = Table(title=f"ready in {elapsed:.1f}s — Ctrl-C stops everything", show_header=False)
    labels = {
        "api_docs": "API docs",
        "app": "Investor app",
        "temporal_ui": "Temporal Web UI",
        "kafka": "Kafka broker",
        "api": "API",
        "temporal": "Temporal",
        "database": "PostgreSQL",
        "redis": "Redis",
        "smtp": "SMTP sink",
        "object_store": "Object store",
        "logs": "Logs",
    }
    for key, label in labels.items():
        if key in addresses:
            table.add_row(label, addresses[key])
    Console().print(table)


@app.command()
def migrate() -> None:
    """Apply database migrations (creates one schema per bounded context)."""
    from pap.migrate import upgrade

    settings = load_settings(beside_running_stack=True)
    upgrade(settings.require("database_url"))
    console.print("migrations applied")


GRACEFUL_SHUTDOWN_SECONDS = 5
"""How long a stopping API lets requests finish; long polls (`Prefer: wait`) would otherwise hold it."""


@app.command()
def api() -> None:
    """Serve the HTTP API (and the investor app) with uvicorn."""
    import uvicorn

    settings = load_settings()
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        workers=settings.api_workers or 1,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


@app.command()
def worker() -> None:
    """Run the Temporal worker (every workflow and activity)."""
    from pap.processes import run_process, worker_main

    run_process(load_settings(), "worker", worker_main)


@app.command()
def relay() -> None:
    """Publish the transactional outbox to Kafka."""
    from pap.processes import relay_main, run_process

    run_process(load_settings(), "relay", relay_main)


@app.command()
def consumers() -> None:
    """Run the Kafka consumers (notifications, pricing, projections)."""
    from pap.processes import consumers_main, run_process

    run_process(load_settings(), "consumers", consumers_main)


ops = typer.Typer(help="Operations: repair and inspect the running platform", no_args_is_help=True)
dlq = typer.Typer(help="The dead-letter topic (pap.dlq): events consumers gave up on", no_args_is_help=True)
pricing_app = typer.Typer(help="Pricing: reference price tools", no_args_is_help=True)
ops.add_typer(dlq, name="dlq")
app.add_typer(ops, name="ops")
app.add_typer(deals_app, name="deals")
app.command()(login)
register_ops_commands(ops)
app.add_typer(pricing_app, name="pricing")


@dlq.command("list")
def dlq_list(consumer: str | None = typer.Option(None, help="Only this consumer's dead letters")) -> None:
    """Show each dead-lettered event: consumer, original topic, event type and id, error."""
    from events.dlq import read_dead_letters

    bootstrap = load_settings(beside_running_stack=True).require("kafka_bootstrap")
    letters = [d for d in asyncio.run(read_dead_letters(bootstrap)) if consumer is None or d.consumer == consumer]
    table = Table("offset", "consumer", "topic", "type", "event id", "error")
    for d in letters:
        table.add_row(
            f"{d.partition}:{d.offset}",
            d.consumer,
            d.original_topic,
            d.event_type or "?",
            d.event_id or "?",
            d.error[:80],
        )
    Console().print(table)
    console.print(f"{len(letters)} dead letter(s)")


@dlq.command("replay")
def dlq_replay(consumer: str | None = typer.Option(None, help="Only this consumer's dead letters")) -> None:
    """Re-publish dead-lettered events to their original topics (consumers skip what they already handled)."""
    from events.dlq import replay_dead_letters

    bootstrap = load_settings(beside_running_stack=True).require("kafka_bootstrap")
    replayed = asyncio.run(replay_dead_letters(bootstrap, consumer=consumer))
    for d in replayed:
        Console().print(f"replayed {d.event_type} {d.event_id} -> {d.original_topic} (consumer {d.consumer})")
    console.print(f"{len(replayed)} event(s) replayed")


@pricing_app.command("backtest")
def pricing_backtest(security_id: str = typer.Option(..., help="The security to backtest")) -> None:
    """Mean absolute % error of the reference price against the next closed trade, over stored prints."""
    import uuid

    from pap.db import create_engine, create_session_factory, transaction
    from services.pricing import backtest

    settings = load_settings(beside_running_stack=True)

    async def main() -> str:
        engine = create_engine(settings.require("database_url"))
        try:
            async with transaction(create_session_factory(engine)) as session:
                result = await backtest(session, uuid.UUID(security_id))
            return result.model_dump_json(indent=2)
        finally:
            await engine.dispose()

    Console().print(asyncio.run(main()))


@app.command()
def seed(demo: bool = typer.Option(False, "--demo", help="Load the demo data set")) -> None:
    """Load demo data through the services (idempotent: run it again and nothing is duplicated)."""
    if not demo:
        console.print("nothing to do: pass --demo")
        raise typer.Exit(2)
    from pap.seed import seed_demo

    report = asyncio.run(seed_demo(load_settings(beside_running_stack=True)))
    out = Console()
    out.print(f"companies: {', '.join(report.companies)}")
    out.print(f"open sell order: {report.order_id}")
    out.print(f"deal in progress: {report.deal_id} (open /app/deals/{report.deal_id} as either demo user)")
    for email, password in report.users:
        out.print(f"demo user {email} / {password}  (log in at /app/login)")


if __name__ == "__main__":
    sys.exit(app())
