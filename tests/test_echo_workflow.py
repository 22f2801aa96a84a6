"""EchoWorkflow under the time-skipping server: a day-long durable timer costs no wall time."""

from __future__ import annotations

import uuid

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.diagnostics import DiagnosticsActivities
from models.diagnostics import EchoWorkflowInput
from pap.db import SessionFactory, transaction
from services import diagnostics
from workflows.diagnostics import EchoWorkflow


async def test_echo_waits_its_timer_then_processes_once(
    time_skipping_env: WorkflowEnvironment, sessions: SessionFactory
) -> None:
    async with transaction(sessions) as session:
        echo = await diagnostics.create_echo(session, "a day later")
    queue = f"test-{uuid.uuid4()}"
    activities = DiagnosticsActivities(sessions)
    async with Worker(
        time_skipping_env.client, task_queue=queue, workflows=[EchoWorkflow], activities=[activities.process_echo]
    ):
        result = await time_skipping_env.client.execute_workflow(
            EchoWorkflow.run,
            EchoWorkflowInput(echo_id=echo.id, delay_seconds=86_400 / 2),
            id=f"echo-{echo.id}",
            task_queue=queue,
        )
    assert result == "processed"
    async with sessions() as session:
        stored = await diagnostics.get_echo(session, echo.id)
    assert stored.processed_at is not None
    assert (stored.processed_at - stored.created_at).total_seconds() < 600
