"""Starting the deal that executes a trade (after the trade's transaction commits).

The deals context owns the `DealExecution` workflow; it is started here by NAME so the
marketplace does not import it. The lead replaces this body when the deals context lands.
"""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from models.marketplace import TradeRead
from pap.settings import get_settings
from temporal.ids import deal_workflow_id

DEAL_WORKFLOW = "DealExecution"


def deal_payload(trade: TradeRead) -> dict[str, Any]:
    return {
        "trade_id": str(trade.id),
        "deal_id": str(trade.deal_id),
        "security_id": str(trade.security_id),
        "company_id": str(trade.company_id),
        "buy_order_id": str(trade.buy_order_id),
        "sell_order_id": str(trade.sell_order_id),
        "buyer_id": str(trade.buyer_id),
        "seller_id": str(trade.seller_id),
        "quantity": trade.quantity,
        "price": trade.price.model_dump(mode="json"),
        "matched_at": trade.matched_at.isoformat(),
    }


async def start_deal_for_trade(
    temporal_client: Client, trade: TradeRead, *, task_queue: str | None = None
) -> WorkflowHandle[Any, Any]:
    """Start `deal-{trade_id}` (a retry finds the same workflow)."""
    return await temporal_client.start_workflow(
        DEAL_WORKFLOW,
        deal_payload(trade),
        id=deal_workflow_id(trade.deal_id),
        task_queue=task_queue or get_settings().task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
