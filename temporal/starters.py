"""Starting the platform's long-running workflows by business id, safely retried."""

from __future__ import annotations

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from models.deals import DealWorkflowInput
from temporal.ids import deal_workflow_id


async def start_deal(client: Client, params: DealWorkflowInput, task_queue: str) -> WorkflowHandle[object, str]:
    """Start `deal-{id}`; a retried call (same id) returns the running workflow instead of a second deal."""
    handle: WorkflowHandle[object, str] = await client.start_workflow(
        "DealExecution",
        params,
        id=deal_workflow_id(params.deal_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        result_type=str,
    )
    return handle
