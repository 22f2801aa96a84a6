"""Starting the platform's long-running workflows by business id, safely retried."""

from __future__ import annotations

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)

from models.deals import DealWorkflowInput
from models.marketplace import OrderRead, OrderWorkflowInput
from temporal.ids import deal_workflow_id, order_workflow_id
from temporal.search_attributes import ORDER_STATUS, SECURITY_ID, SIDE


async def start_deal(client: Client, params: DealWorkflowInput, task_queue: str) -> WorkflowHandle[object, str]:
    """Start `deal-{id}`: a running one is kept (a retried call gets it), a finished one never runs again.

    Raises `WorkflowAlreadyStartedError` when the deal's workflow already ran to its end.
    """
    handle: WorkflowHandle[object, str] = await client.start_workflow(
        "DealExecution",
        params,
        id=deal_workflow_id(params.deal_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        result_type=str,
    )
    return handle


async def start_lifecycle(client: Client, order: OrderRead, task_queue: str) -> None:
    """Start `order-{id}` for a live order; a running one is kept, a completed one is never started again.

    A run that was terminated (ops) or failed is started afresh from the order as it is now, so
    the order can still be cancelled, amended and expire. Raises `WorkflowAlreadyStartedError`
    when the order's workflow completed (it saw the order closed).
    """
    await client.start_workflow(
        "OrderLifecycle",
        OrderWorkflowInput(
            order_id=order.id,
            user_id=order.user_id,
            security_id=order.security_id,
            side=order.side,
            status=order.status,
            filled_quantity=order.filled_quantity,
            expires_at=order.expires_at,
            attributes_at_start=True,
        ),
        id=order_workflow_id(order.id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(ORDER_STATUS, order.status.value),
                SearchAttributePair(SECURITY_ID, str(order.security_id)),
                SearchAttributePair(SIDE, order.side.value),
            ]
        ),
    )
