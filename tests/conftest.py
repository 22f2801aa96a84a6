"""Session fixtures: the real embedded stack on free ports, shared by every test.

PostgreSQL, Redis, the Tansu broker, the Temporal dev server and the SMTP sink
start as child processes (the same code `pap up` runs), then the migrations,
then the platform's worker, relay, consumers and API. Point `PAP_TEST_*`
variables at existing servers to use those instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from pap.db import SessionFactory, create_engine, create_session_factory
from pap.settings import Settings
from pap.stack import binaries
from pap.stack.embedded import EmbeddedStack
from temporal.client import connect

EXTERNAL = {
    "database_url": os.environ.get("PAP_TEST_DATABASE_URL"),
    "redis_url": os.environ.get("PAP_TEST_REDIS_URL"),
    "kafka_bootstrap": os.environ.get("PAP_TEST_KAFKA_BOOTSTRAP"),
    "temporal_address": os.environ.get("PAP_TEST_TEMPORAL_ADDRESS"),
}


@pytest.fixture(scope="session")
def state_dir() -> Iterator[Path]:
    # Not under pytest's tmp_path: PostgreSQL runs as another user and needs to traverse the path.
    path = Path(tempfile.mkdtemp(prefix="pap-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
async def stack(state_dir: Path) -> AsyncIterator[EmbeddedStack]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        env="test",
        state_dir=state_dir,
        log_format="json",
        **{k: v for k, v in EXTERNAL.items() if v},
    )
    embedded = EmbeddedStack(settings, persistent=False)
    embedded.use_free_api_port()
    try:
        await embedded.start_infrastructure()
        await embedded.prepare()
        await embedded.start_platform()
        yield embedded
    finally:
        await embedded.stop()


@pytest.fixture(scope="session")
def settings(stack: EmbeddedStack) -> Settings:
    return stack.settings


@pytest.fixture(scope="session")
async def sessions(settings: Settings) -> AsyncIterator[SessionFactory]:
    engine = create_engine(settings.require("database_url"), pool_size=5)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture(scope="session")
async def temporal_client(settings: Settings) -> Client:
    return await connect(settings.require("temporal_address"), settings.temporal_namespace)


@pytest.fixture(scope="session")
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the API process, exactly as an outside client would call it."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.api_port}", timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(binaries.temporal_test_server()),
        data_converter=pydantic_data_converter,
    )
    yield env
    await env.shutdown()
