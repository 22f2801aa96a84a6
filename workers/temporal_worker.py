"""The Temporal worker process: every workflow and activity on the main task queue."""

from __future__ import annotations

import asyncio
import compileall
from datetime import timedelta
from pathlib import Path

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

import workflows
from pap.resources import Resources
from temporal.metrics import ActivityMetricsInterceptor
from workers.registry import WORKFLOWS, build_activities

log = structlog.get_logger(__name__)


def precompile_workflows() -> bool:
    """Write the workflow modules' bytecode, so the sandbox loads them instead of compiling them per run.

    The sandbox re-imports a workflow's module for every new run (that is its isolation); without
    a `.pyc` on disk (e.g. PYTHONDONTWRITEBYTECODE) each import compiles the source again, which
    was half the worker's CPU under load. False when the folder is read-only (then nothing changes).
    """
    return bool(compileall.compile_dir(Path(workflows.__file__).parent, quiet=2))


def build_worker(client: Client, resources: Resources, task_queue: str | None = None) -> Worker:
    settings = resources.settings
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=WORKFLOWS,
        activities=build_activities(resources),
        interceptors=[ActivityMetricsInterceptor()],
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=settings.worker_sticky_timeout_seconds),
        graceful_shutdown_timeout=timedelta(seconds=10),
    )


async def run_worker(client: Client, resources: Resources, stop: asyncio.Event) -> None:
    precompile_workflows()
    worker = build_worker(client, resources)
    log.info("temporal worker started", task_queue=worker.task_queue)
    async with worker:
        await stop.wait()
    log.info("temporal worker stopped")
