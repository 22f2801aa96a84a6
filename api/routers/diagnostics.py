"""`/v1/_diagnostics/echo`: one request through API, Postgres, Temporal, the outbox and Kafka.

An ops diagnostic (admin or compliance with MFA): it proves the wiring of a running platform.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, status
from temporalio.common import WorkflowIDConflictPolicy

from api.auth import require
from api.deps import SessionDep, SessionsDep, SettingsDep, TemporalDep
from models.diagnostics import Echo, EchoCreate, EchoRead, EchoWorkflowInput
from pap.db import transaction
from services import diagnostics
from services.identity.permissions import Permission
from temporal.ids import echo_workflow_id
from workflows.diagnostics import EchoWorkflow

router = APIRouter(
    prefix="/v1/_diagnostics", tags=["diagnostics"], dependencies=[Depends(require(Permission.OPS_OPERATE))]
)


def _read(echo: Echo) -> EchoRead:
    return EchoRead(**echo.model_dump(), workflow_id=echo_workflow_id(echo.id))


@router.post("/echo", status_code=status.HTTP_201_CREATED)
async def create_echo(
    body: EchoCreate,
    sessions: SessionsDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> EchoRead:
    async with transaction(sessions) as session:
        echo = await diagnostics.create_echo(session, body.message)
    await temporal.start_workflow(
        EchoWorkflow.run,
        EchoWorkflowInput(echo_id=echo.id, delay_seconds=body.delay_seconds),
        id=echo_workflow_id(echo.id),
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    return _read(echo)


@router.get("/echo/{echo_id}")
async def get_echo(echo_id: uuid.UUID, session: SessionDep) -> EchoRead:
    return _read(await diagnostics.get_echo(session, echo_id))
