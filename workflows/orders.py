"""OrderLifecycle (`order-{id}`): time in force, cancel and amend Updates, fills, terminal status.

The database is the source of truth for matching; this workflow owns the order's
time: the good-till-date timer, and it serializes the owner's cancel/amend through
activities that lock the order row. Matching signals `order_filled`; the workflow then
re-reads the order and finishes once it is filled.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.marketplace import MarketplaceActivities
    from models.marketplace import (
        LIVE_STATUSES,
        AmendOrderInput,
        CancelOrderInput,
        OrderFilled,
        OrderRead,
        OrderRef,
        OrderStatus,
        OrderWorkflowInput,
    )
    from temporal.search_attributes import ORDER_STATUS, SECURITY_ID, SIDE

ACTIVITY_TIMEOUT = timedelta(seconds=30)
RETRY = RetryPolicy(maximum_interval=timedelta(seconds=10))
TERMINAL_STATUS_STICKS = "order-terminal-status-sticks"
"""Patch: a live status read after the order ended (a stale refresh) is ignored instead of reviving the loop."""


@workflow.defn(name="OrderLifecycle")
class OrderLifecycle:
    @workflow.init
    def __init__(self, params: OrderWorkflowInput) -> None:
        self._params = params
        self._status = params.status
        self._refresh = False

    @workflow.run
    async def run(self, params: OrderWorkflowInput) -> OrderStatus:
        if not params.attributes_at_start:
            self._upsert(
                [
                    ORDER_STATUS.value_set(self._status.value),
                    SECURITY_ID.value_set(str(params.security_id)),
                    SIDE.value_set(params.side.value),
                ]
            )
        while self._status in LIVE_STATUSES:
            timeout = None
            if params.expires_at is not None:
                timeout = max((params.expires_at - workflow.now()).total_seconds(), 0.0)
            try:
                await workflow.wait_condition(
                    lambda: self._refresh or self._status not in LIVE_STATUSES, timeout=timeout
                )
            except TimeoutError:
                self._apply(
                    await self._activity(MarketplaceActivities.expire_order, OrderRef(order_id=params.order_id))
                )
                break
            if self._refresh:
                self._refresh = False
                self._apply(
                    await self._activity(MarketplaceActivities.refresh_order, OrderRef(order_id=params.order_id))
                )
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._status

    async def _activity(self, method: Any, arg: Any) -> OrderRead:
        result: OrderRead = await workflow.execute_activity_method(
            method,
            arg,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )
        return result

    def _apply(self, order: OrderRead) -> None:
        if (
            order.status in LIVE_STATUSES
            and self._status not in LIVE_STATUSES
            and workflow.patched(TERMINAL_STATUS_STICKS)
        ):
            return  # a read older than what ended the order (a fill's refresh racing a cancel): orders never reopen
        if order.status != self._status:
            self._status = order.status
            self._upsert([ORDER_STATUS.value_set(order.status.value)])

    def _upsert(self, updates: list[SearchAttributeUpdate[Any]]) -> None:
        if self._params.index:
            workflow.upsert_search_attributes(updates)

    @workflow.signal(name="order_filled")
    def order_filled(self, fill: OrderFilled) -> None:
        self._refresh = True

    @workflow.query(name="status")
    def status(self) -> OrderStatus:
        return self._status

    def _check(self, user_id: object, action: str) -> None:
        if user_id != self._params.user_id:
            raise ApplicationError("No such order.", {"status": 404, "type": "order-not-found"}, type="order-not-found")
        if self._status not in LIVE_STATUSES:
            slug = f"order-not-{action}"
            raise ApplicationError(f"The order is {self._status.value}.", {"status": 409, "type": slug}, type=slug)

    async def _change(self, method: Any, arg: Any) -> OrderRead:
        try:
            order = await self._activity(method, arg)
        except ActivityError as error:
            cause = error.cause
            if isinstance(cause, ApplicationError):
                raise ApplicationError(str(cause.message), *cause.details, type=cause.type) from None
            raise
        self._apply(order)
        return order

    @workflow.update(name="cancel")
    async def cancel(self, request: CancelOrderInput) -> OrderRead:
        return await self._change(MarketplaceActivities.cancel_order, request)

    @cancel.validator
    def _validate_cancel(self, request: CancelOrderInput) -> None:
        self._check(request.user_id, "cancellable")

    @workflow.update(name="amend")
    async def amend(self, request: AmendOrderInput) -> OrderRead:
        return await self._change(MarketplaceActivities.amend_order, request)

    @amend.validator
    def _validate_amend(self, request: AmendOrderInput) -> None:
        # What is filled is checked by the activity under the order's lock: this workflow's copy may
        # lag (a cancelled deal gives fills back, and the workflow hears of it later).
        self._check(request.user_id, "amendable")
