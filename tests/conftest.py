"""Session fixtures: the real embedded stack on free ports, shared by every test.

PostgreSQL, Redis, the Tansu broker, the Temporal dev server and the SMTP sink
start as child processes (the same code `pap up` runs), then the migrations,
then the platform's worker, relay, consumers and API. Point `PAP_TEST_*`
variables at existing servers to use those instead.
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from pap.db import SessionFactory, create_engine, create_session_factory
from pap.redis import create_redis
from pap.settings import Settings
from pap.stack import binaries
from pap.stack.embedded import EmbeddedStack
from services.identity.permissions import Role
from services.identity.throttling import IP_KEY, RESET_IP_KEY
from services.identity.tokens import KeyRing, Principal
from temporal.client import connect

EXTERNAL = {
    "database_url": os.environ.get("PAP_TEST_DATABASE_URL"),
    "redis_url": os.environ.get("PAP_TEST_REDIS_URL"),
    "kafka_bootstrap": os.environ.get("PAP_TEST_KAFKA_BOOTSTRAP"),
    "temporal_address": os.environ.get("PAP_TEST_TEMPORAL_ADDRESS"),
}


RUN_LAST = ("tests/test_api_fuzz.py",)
"""Tests that write arbitrary data into the shared stack: every other test runs before them."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.nodeid.startswith(RUN_LAST))  # stable: the rest keep their order


@pytest.fixture(scope="session")
def state_dir() -> Iterator[Path]:
    # Not under pytest's tmp_path: PostgreSQL runs as another user and needs to traverse the path.
    path = Path(tempfile.mkdtemp(prefix="pap-test-"))
    path.chmod(0o755)
    yield path
    if not os.environ.get("PAP_TEST_KEEP_STATE"):  # keep logs for a post-mortem
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
async def stack(state_dir: Path) -> AsyncIterator[EmbeddedStack]:
    """Infrastructure started and migrated; no platform process yet."""
    # Tests create deal rows whose workflows they start themselves (on the time-skipping server) or
    # never: the deal backstops must not act on them too. tests/test_deal_backstops.py drives them.
    # Tansu holds each consumer group join for half the session timeout: a short one saves seconds per join.
    settings = Settings(
        _env_file=None,
        env="test",
        state_dir=state_dir,
        log_format="json",
        workflow_backstop_delay_seconds=86_400,
        consumer_session_timeout_ms=3_000,
        worker_sticky_timeout_seconds=2.0,  # the fault tests kill the worker: its workflows move on sooner
        registrations_per_address_per_hour=1_000_000,  # every test user signs up from 127.0.0.1
    )
    settings = settings.model_copy(update={k: v for k, v in EXTERNAL.items() if v})
    embedded = EmbeddedStack(settings, persistent=False)
    embedded.use_free_api_port()
    try:
        await embedded.start_infrastructure()
        await embedded.prepare()
        KeyRing.load(state_dir / "keys")  # before the API starts, so tests and API share one ring
        yield embedded
    finally:
        await embedded.stop()


@pytest.fixture(scope="session")
async def platform(stack: EmbeddedStack) -> EmbeddedStack:
    """The platform's own processes (worker, relay, consumers, API) running against the stack."""
    await stack.start_platform()
    return stack


@pytest.fixture(scope="session")
def settings(stack: EmbeddedStack) -> Settings:
    return stack.settings


@pytest.fixture(scope="session")
async def sessions(settings: Settings) -> AsyncIterator[SessionFactory]:
    engine = create_engine(settings.require("database_url"), pool_size=5)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = create_redis(settings.require("redis_url"))
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
async def temporal_client(settings: Settings) -> Client:
    return await connect(settings.require("temporal_address"), settings.temporal_namespace)


@pytest.fixture(scope="session")
async def api(platform: EmbeddedStack) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the API process, exactly as an outside client would call it."""
    port = platform.settings.api_port
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        yield client


@pytest.fixture(autouse=True)
def _no_garbage_from_earlier_tests() -> None:
    """Collect earlier tests' garbage cycles first: their finalizers, run by the collector in the middle of
    a Temporal sandbox import, can trip a CPython < 3.12 module-lock race ("Failed validating workflow",
    temporalio/sdk-python#585). See `no_cyclic_gc` in tests/test_replay.py."""
    gc.collect()


@pytest.fixture(autouse=True)
async def _unthrottled_test_address(request: pytest.FixtureRequest) -> None:
    """Every test logs in from 127.0.0.1, so deliberate failures in earlier tests (wrong passwords, bad
    OTPs, password reset requests) add up on per-IP counters; each test that runs the platform starts
    with them cleared."""
    if "platform" not in request.fixturenames:
        return
    stack: EmbeddedStack = request.getfixturevalue("platform")
    client = Redis.from_url(stack.settings.require("redis_url"))
    try:
        await client.delete(IP_KEY.format("127.0.0.1"), RESET_IP_KEY.format("127.0.0.1"))
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
async def ops_api(
    platform: EmbeddedStack, token_for: Callable[..., dict[str, str]]
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client acting as an admin with MFA (ops diagnostics, privileged reads)."""
    port = platform.settings.api_port
    headers = token_for(uuid.uuid4(), Role.ADMIN)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30, headers=headers) as client:
        yield client


@pytest.fixture(scope="session")
def keyring(state_dir: Path, stack: EmbeddedStack) -> KeyRing:
    """The API's signing keys, for minting tokens of test principals."""
    return KeyRing.load(state_dir / "keys")


@pytest.fixture(scope="session")
def token_for(keyring: KeyRing) -> Callable[..., dict[str, str]]:
    """`token_for(user_id, Role.X, ..., mfa=True)` -> Authorization headers for that principal."""

    def make(user_id: uuid.UUID, *roles: Role, mfa: bool = True, company_id: uuid.UUID | None = None) -> dict[str, str]:
        principal = Principal(user_id=user_id, roles=frozenset(roles), mfa=mfa, company_id=company_id)
        return {"Authorization": f"Bearer {keyring.issue(principal)}"}

    return make


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(binaries.temporal_test_server()),
        data_converter=pydantic_data_converter,
    )
    yield env
    await env.shutdown()
