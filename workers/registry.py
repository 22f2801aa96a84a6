"""Every workflow and activity the platform's worker runs, in one place."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.diagnostics import DiagnosticsActivities
from activities.profiles import ProfilesActivities
from pap.resources import Resources
from workflows.diagnostics import EchoWorkflow
from workflows.profiles import AccreditationWorkflow, KycWorkflow

WORKFLOWS: list[type] = [EchoWorkflow, KycWorkflow, AccreditationWorkflow]


def build_activities(resources: Resources) -> list[Callable[..., Any]]:
    diagnostics = DiagnosticsActivities(resources.sessions)
    profiles = ProfilesActivities(resources.sessions, resources.settings)
    return [
        diagnostics.process_echo,
        profiles.kyc_request_check,
        profiles.kyc_set_status,
        profiles.accreditation_record_decision,
        profiles.accreditation_expire,
    ]
