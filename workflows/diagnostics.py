"""EchoWorkflow: the smallest workflow that crosses every component of the platform."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.diagnostics import DiagnosticsActivities
    from models.diagnostics import EchoWorkflowInput, ProcessEchoInput


@workflow.defn(name="EchoWorkflow")
class EchoWorkflow:
    @workflow.run
    async def run(self, params: EchoWorkflowInput) -> str:
        if params.delay_seconds:
            await workflow.sleep(timedelta(seconds=params.delay_seconds))
        return await workflow.execute_activity_method(
            DiagnosticsActivities.process_echo,
            ProcessEchoInput(echo_id=params.echo_id),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=5)),
        )
