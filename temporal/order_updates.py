"""Changing an order through its `order-{id}` workflow (an Update), shared by the API and the consumers."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from models.marketplace import AmendOrderInput, CancelOrderInput, OrderRead
from services import holdings, marketplace
from services.errors import Conflict, DomainError, InvalidInput, NotFound
from temporal.ids import order_workflow_id
from temporal.starters import start_lifecycle

_KNOWN: dict[str, type[DomainError]] = {
    **marketplace.MARKETPLACE_ERRORS,
    holdings.InsufficientShares.type: holdings.InsufficientShares,
}
_BY_STATUS: dict[int, type[DomainError]] = {404: NotFound, 409: Conflict, 422: InvalidInput}


def _rejection(error: WorkflowUpdateFailedError) -> DomainError:
    """The domain error an Update validator or its activity refused with, rebuilt for the problem handler."""
    cause = error.cause
    if not isinstance(cause, ApplicationError):
        return Conflict("The order could not be changed.")
    details: dict[str, Any] = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
    cls = _KNOWN.get(cause.type or "")
    if cls is None:
        base = _BY_STATUS.get(int(details.get("status", 409)), Conflict)
        cls = type(
            "WorkflowRejection", (base,), {"type": cause.type or base.type, "title": details.get("title", base.title)}
        )
    return cls(cause.message, errors=details.get("errors"))


async def change_order(
    client: Client, order: OrderRead, task_queue: str, update: str, arg: CancelOrderInput | AmendOrderInput
) -> OrderRead:
    """Run the `cancel`/`amend` Update; a refusal comes back as the domain error (a problem response)."""
    handle = client.get_workflow_handle(order_workflow_id(order.id))
    for attempt in range(2):
        try:
            result: OrderRead = await handle.execute_update(update, arg, result_type=OrderRead)
            return result
        except WorkflowUpdateFailedError as error:
            raise _rejection(error) from error
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND or attempt:
                raise
            # No running workflow: it never started (the API stopped right after commit) or ops
            # terminated it. Start it from the order as it is now, then retry.
            try:
                await start_lifecycle(client, order, task_queue)
            except WorkflowAlreadyStartedError as finished:
                raise Conflict("The order's workflow has already finished; refresh the order.") from finished
    raise AssertionError("unreachable")


async def cancel_orders(client: Client, orders: list[OrderRead], task_queue: str, reason: str) -> int:
    """Cancel each order through its workflow on the platform's behalf (shares released by the workflow's
    activity); one filled or cancelled in the meantime is skipped. Returns how many were cancelled."""
    cancelled = 0
    for order in orders:
        request = CancelOrderInput(order_id=order.id, user_id=order.user_id, reason=reason)
        try:
            await change_order(client, order, task_queue, "cancel", request)
        except DomainError:  # filled or cancelled in the meantime: nothing left to cancel
            continue
        cancelled += 1
    return cancelled
