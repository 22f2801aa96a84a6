"""Activities of the OrderLifecycle workflow: each is one transaction that takes the order's locks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from temporalio import activity

from activities.failures import business_failure
from models.marketplace import AmendOrderInput, CancelOrderInput, OrderRead, OrderRef
from pap.db import SessionFactory, transaction
from pap.settings import Settings
from services import marketplace
from services.errors import DomainError
from services.marketplace.after_commit import after_commit
from services.marketplace.orders import OrderOutcome

log = structlog.get_logger(__name__)


class MarketplaceActivities:
    def __init__(self, sessions: SessionFactory, settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings

    async def _run(self, change: Callable[[Any], Awaitable[OrderOutcome]]) -> OrderRead:
        try:
            async with transaction(self.sessions) as session:
                outcome = await change(session)
        except DomainError as error:
            raise business_failure(error) from error
        if outcome.trades or outcome.touched_order_ids:
            try:
                await after_commit(activity.client(), outcome, task_queue=self.settings.task_queue)
            except Exception:  # committed: a retry would redo a change already made (and be refused)
                log.warning(
                    "order changed; its deals and signals are left to the backstops",
                    order_id=str(outcome.order.id),
                    exc_info=True,
                )
        return outcome.order

    @activity.defn(name="marketplace.cancel_order")
    async def cancel_order(self, params: CancelOrderInput) -> OrderRead:
        return await self._run(lambda s: marketplace.cancel_order(s, params.order_id, params.user_id, params.reason))

    @activity.defn(name="marketplace.expire_order")
    async def expire_order(self, params: OrderRef) -> OrderRead:
        return await self._run(lambda s: marketplace.expire_order(s, params.order_id))

    @activity.defn(name="marketplace.amend_order")
    async def amend_order(self, params: AmendOrderInput) -> OrderRead:
        return await self._run(
            lambda s: marketplace.amend_order(
                s, params.order_id, params.user_id, quantity=params.quantity, limit_price=params.limit_price
            )
        )

    @activity.defn(name="marketplace.refresh_order")
    async def refresh_order(self, params: OrderRef) -> OrderRead:
        async with transaction(self.sessions) as session:
            return await marketplace.get_order(session, params.order_id)
