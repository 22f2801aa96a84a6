"""Every workflow and activity the platform's worker runs, in one place."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.deals import DealActivities
from activities.diagnostics import DiagnosticsActivities
from pap.resources import Resources
from workflows.deals import DealExecutionWorkflow
from workflows.diagnostics import EchoWorkflow

WORKFLOWS: list[type] = [EchoWorkflow, DealExecutionWorkflow]


def build_activities(resources: Resources) -> list[Callable[..., Any]]:
    diagnostics = DiagnosticsActivities(resources.sessions)
    deals = DealActivities(resources.sessions, resources.store)
    return [
        diagnostics.process_echo,
        deals.record_stage,
        deals.confirm_participants,
        deals.generate_documents,
        deals.send_reminders,
        deals.void_signatures,
        deals.create_funding,
        deals.find_backup_buyer,
        deals.release_escrow,
        deals.transfer_shares,
        deals.complete_orders,
        deals.refund_escrow,
        deals.release_shares,
        deals.notify_buyer_replaced,
    ]
