"""The Temporal worker process: every workflow and activity on the main task queue."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from pap.resources import Resources
from temporal.metrics import ActivityMetricsInterceptor
from workers.registry import WORKFLOWS, build_activities

log = structlog.get_logger(__name__)


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
        graceful_shutdown_timeout=timedelta(seconds=10),
    )


async def run_worker(client: Client, resources: Resources, stop: asyncio.Event) -> None:
    worker = build_worker(client, resources)
    log.info("temporal worker started", task_queue=worker.task_queue)
    async with worker:
        await stop.wait()
    log.info("temporal worker stopped")
