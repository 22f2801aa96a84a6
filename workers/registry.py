"""Every workflow and activity the platform's worker runs, in one place."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from activities.deals import DealActivities
from activities.diagnostics import DiagnosticsActivities
from activities.marketplace import MarketplaceActivities
from activities.profiles import ProfilesActivities
from pap.resources import Resources
from workflows.deals import DealExecutionWorkflow
from workflows.diagnostics import EchoWorkflow
from workflows.orders import OrderLifecycle
from workflows.profiles import AccreditationWorkflow, KycWorkflow

WORKFLOWS: list[type] = [EchoWorkflow, KycWorkflow, AccreditationWorkflow, OrderLifecycle, DealExecutionWorkflow]


def activity_methods(instance: object) -> list[Callable[..., Any]]:
    """The bound `@activity.defn` methods of an activities object."""
    return [
        method
        for _, method in inspect.getmembers(instance, inspect.ismethod)
        if hasattr(method, "__temporal_activity_definition")
    ]


def build_activities(resources: Resources) -> list[Callable[..., Any]]:
    return [
        *activity_methods(DiagnosticsActivities(resources.sessions)),
        *activity_methods(ProfilesActivities(resources.sessions, resources.settings)),
        *activity_methods(MarketplaceActivities(resources.sessions, resources.settings)),
        *activity_methods(DealActivities(resources.sessions, resources.store)),
    ]
