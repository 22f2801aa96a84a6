"""The stack a benchmark runs against: its own embedded one, or a running `pap up` (`--stack`)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from pap.settings import Settings
from pap.stack.embedded import EmbeddedStack
from services.identity.tokens import KeyRing


@dataclass
class BenchStack:
    settings: Settings
    api_url: str
    embedded: EmbeddedStack | None
    """None when the benchmark uses a stack it did not start."""

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user + system) each component and its children used so far; empty with `--stack`."""
        if self.embedded is None:
            return {}
        supervisor = self.embedded.supervisor
        return {name: _tree_cpu(supervisor.pid(name)) for name in supervisor.names}


def _tree_cpu(pid: int) -> float:
    total = 0.0
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return total
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


@asynccontextmanager
async def bench_stack(stack_file: str | None, api_workers: int) -> AsyncIterator[BenchStack]:
    """Start (and finally stop) an embedded stack on free ports, or attach to `stack_file`."""
    if stack_file:
        addresses = json.loads(Path(stack_file).read_text())
        settings = Settings(
            database_url=addresses["database"], temporal_address=addresses["temporal"], redis_url=addresses["redis"]
        )
        yield BenchStack(settings, addresses["api"], None)
        return
    state_dir = Path(tempfile.mkdtemp(prefix="pap-bench-"))
    state_dir.chmod(0o755)  # PostgreSQL runs as another user and must traverse it
    settings = Settings(
        _env_file=None,
        env="test",
        state_dir=state_dir,
        log_format="json",
        log_level="WARNING",
        api_workers=api_workers,
    )
    stack = EmbeddedStack(settings, persistent=False)
    stack.use_free_api_port()
    try:
        await stack.start_infrastructure()
        await stack.prepare()
        KeyRing.load(state_dir / "keys")
        await stack.start_platform()
        yield BenchStack(stack.settings, f"http://127.0.0.1:{stack.settings.api_port}", stack)
    finally:
        await stack.stop()  # also when a component failed to start: nothing is left running
