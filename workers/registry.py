"""Every workflow and activity the platform's worker runs, in one place."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.diagnostics import DiagnosticsActivities
from pap.resources import Resources
from workflows.diagnostics import EchoWorkflow

WORKFLOWS: list[type] = [EchoWorkflow]


def build_activities(resources: Resources) -> list[Callable[..., Any]]:
    diagnostics = DiagnosticsActivities(resources.sessions)
    return [diagnostics.process_echo]
