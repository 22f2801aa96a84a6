"""Every workflow and activity the platform's worker runs, in one place."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.diagnostics import DiagnosticsActivities
from activities.marketplace import MarketplaceActivities
from activities.profiles import ProfilesActivities
from pap.resources import Resources
from workflows.diagnostics import EchoWorkflow
from workflows.orders import OrderLifecycle
from workflows.profiles import AccreditationWorkflow, KycWorkflow

WORKFLOWS: list[type] = [EchoWorkflow, KycWorkflow, AccreditationWorkflow, OrderLifecycle]


def build_activities(resources: Resources) -> list[Callable[..., Any]]:
    diagnostics = DiagnosticsActivities(resources.sessions)
    profiles = ProfilesActivities(resources.sessions, resources.settings)
    marketplace = MarketplaceActivities(resources.sessions, resources.settings)
    return [
        diagnostics.process_echo,
        profiles.kyc_request_check,
        profiles.kyc_set_status,
        profiles.accreditation_record_decision,
        profiles.accreditation_expire,
        marketplace.cancel_order,
        marketplace.expire_order,
        marketplace.amend_order,
        marketplace.refresh_order,
    ]
