"""Deal workflow tests: a time-skipping server per test (a deal left waiting by one test never holds another's
clock), a worker with the real activities against the real database, and the parties of a deal."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.deals import DealActivities
from pap.db import SessionFactory
from pap.settings import Settings
from pap.stack import binaries
from pap.storage import LocalObjectStore
from tests.deal_support import Parties, TokenFor, parties
from workers.registry import activity_methods
from workflows.deals import DealExecutionWorkflow


@pytest.fixture
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(binaries.temporal_test_server()), data_converter=pydantic_data_converter
    )
    yield env
    await env.shutdown()


@pytest.fixture
def real_activities(sessions: SessionFactory, settings: Settings) -> DealActivities:
    return DealActivities(sessions, LocalObjectStore(settings.state_dir / "objects"))


@pytest.fixture
async def worker(time_skipping_env: WorkflowEnvironment, real_activities: DealActivities) -> AsyncIterator[str]:
    """A worker on a task queue of its own; yields the queue."""
    queue = f"deals-{uuid.uuid4()}"
    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[DealExecutionWorkflow],
        activities=activity_methods(real_activities),
    ):
        yield queue


@pytest.fixture
async def people(api: httpx.AsyncClient, sessions: SessionFactory, token_for: TokenFor) -> Parties:
    return await parties(api, sessions, token_for)
