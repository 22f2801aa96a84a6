"""Child-process supervision: start with a readiness check, restart on crash, stop the whole tree.

Each child runs in its own session (process group) and logs to a file under the
state folder, so stopping a component also stops whatever it spawned and a
failed start can show the tail of its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

ReadyCheck = Callable[[], Awaitable[bool]]


class ComponentFailed(RuntimeError):
    """A component exited or never became ready; the message carries the tail of its log."""


@dataclass
class ProcessSpec:
    name: str
    argv: list[str]
    ready: ReadyCheck
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    cwd: Path | None = None
    restart: bool = True
    start_timeout: float = 30.0
    stop_timeout: float = 10.0


@dataclass
class _Managed:
    spec: ProcessSpec
    process: asyncio.subprocess.Process
    log_path: Path
    started_at: float
    restarts: int = 0
    stopping: bool = False


class Supervisor:
    def __init__(self, log_dir: Path, on_restart: Callable[[str, int], None] | None = None) -> None:
        self.log_dir = log_dir
        self.on_restart = on_restart
        self._children: dict[str, _Managed] = {}
        self._watch_task: asyncio.Task[None] | None = None

    @property
    def names(self) -> list[str]:
        return list(self._children)

    def pid(self, name: str) -> int:
        return self._children[name].process.pid

    def log_path(self, name: str) -> Path:
        return self._children[name].log_path

    async def start(self, spec: ProcessSpec) -> None:
        """Start one child and wait until its readiness check passes (or fail with its log)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{spec.name}.log"
        process = await self._spawn(spec, log_path)
        managed = _Managed(spec, process, log_path, time.monotonic())
        self._children[spec.name] = managed
        await self._wait_ready(managed)

    async def _spawn(self, spec: ProcessSpec, log_path: Path) -> asyncio.subprocess.Process:
        env = {**os.environ, **spec.env}
        with log_path.open("ab") as sink:
            sink.write(f"\n--- starting {spec.name}: {' '.join(spec.argv)}\n".encode())
            sink.flush()
            try:
                return await asyncio.create_subprocess_exec(
                    *spec.argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=sink,
                    stderr=asyncio.subprocess.STDOUT,
                    env=env,
                    cwd=spec.cwd,
                    user=spec.user,
                    start_new_session=True,
                )
            except OSError as error:
                raise ComponentFailed(f"{spec.name} could not start: {error}") from error

    async def _wait_ready(self, managed: _Managed) -> None:
        spec = managed.spec
        deadline = time.monotonic() + spec.start_timeout
        while True:
            if managed.process.returncode is not None:
                raise ComponentFailed(
                    f"{spec.name} exited with code {managed.process.returncode} while starting; "
                    f"its log ({managed.log_path}) ends with:\n{self.tail(spec.name)}"
                )
            with contextlib.suppress(Exception):
                if await spec.ready():
                    log.debug("component ready", component=spec.name, pid=managed.process.pid)
                    return
            if time.monotonic() > deadline:
                raise ComponentFailed(
                    f"{spec.name} was not ready after {spec.start_timeout:.0f}s; "
                    f"its log ({managed.log_path}) ends with:\n{self.tail(spec.name)}"
                )
            await asyncio.sleep(0.1)

    def tail(self, name: str, lines: int = 20) -> str:
        path = self._children[name].log_path
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def watch(self) -> None:
        """Restart children that exit on their own (with backoff), until `stop_all`."""
        if self._watch_task is None:
            self._watch_task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            for name, managed in list(self._children.items()):
                if managed.stopping or managed.process.returncode is None or not managed.spec.restart:
                    continue
                managed.restarts += 1
                log.warning(
                    "component exited; restarting",
                    component=name,
                    code=managed.process.returncode,
                )
                if self.on_restart:
                    self.on_restart(name, managed.restarts)
                await asyncio.sleep(min(30.0, 0.5 * 2 ** min(managed.restarts, 6)))
                with contextlib.suppress(ComponentFailed):
                    await self.restart(name)

    async def restart(self, name: str) -> None:
        managed = self._children[name]
        await self._terminate(managed)
        managed.stopping = False
        managed.process = await self._spawn(managed.spec, managed.log_path)
        managed.started_at = time.monotonic()
        await self._wait_ready(managed)

    async def stop(self, name: str) -> None:
        """Stop a child and keep it stopped (tests use it to take a component away)."""
        await self._terminate(self._children[name])

    async def kill(self, name: str) -> None:
        """SIGKILL a child's whole process group, as a crash would; it stays down until restarted."""
        managed = self._children[name]
        managed.stopping = True
        if managed.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(managed.process.pid, signal.SIGKILL)
            await managed.process.wait()

    async def _terminate(self, managed: _Managed) -> None:
        managed.stopping = True
        process = managed.process
        if process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), managed.spec.stop_timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        # Children that escaped the group wait are gone with it; make sure nothing lingers.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    async def stop_all(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
            self._watch_task = None
        for managed in reversed(list(self._children.values())):
            await self._terminate(managed)
