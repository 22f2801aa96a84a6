"""Activities of the diagnostic echo workflow."""

from __future__ import annotations

from temporalio import activity

from models.diagnostics import ProcessEchoInput
from pap.db import SessionFactory, transaction
from services import diagnostics


class DiagnosticsActivities:
    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions

    @activity.defn(name="diagnostics.process_echo")
    async def process_echo(self, params: ProcessEchoInput) -> str:
        async with transaction(self.sessions) as session:
            echo = await diagnostics.mark_processed(session, params.echo_id)
            return echo.status
