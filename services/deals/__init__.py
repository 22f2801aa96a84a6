"""The deals context: the deal aggregate, its projection and timeline, and who may see it."""

from services.deals.lifecycle import create_deal, record_stage, workflow_input
from services.deals.queries import (
    deal_for_viewer,
    deals_created_between,
    ensure_not_a_party,
    get_deal,
    list_deals,
    open_deals,
    open_deals_of,
    sees_every_payment,
    set_on_hold,
    timeline,
)

__all__ = [
    "create_deal",
    "deal_for_viewer",
    "deals_created_between",
    "ensure_not_a_party",
    "get_deal",
    "list_deals",
    "open_deals",
    "open_deals_of",
    "record_stage",
    "sees_every_payment",
    "set_on_hold",
    "timeline",
    "workflow_input",
]
