"""Generated requests against every operation of the OpenAPI document never get a 500.

Schemathesis derives valid and invalid requests from the API's own schema (bodies, query
strings, path parameters, NUL characters, over-long and out-of-range values) and sends
them over HTTP to the running API process, as an anonymous caller, an investor and a
caller holding every role. Whatever a client can send must be answered with a 2xx/3xx
or an RFC 9457 problem, never an internal error. Generation is derandomized, so a run
sends the same requests every time. This test writes arbitrary data into the shared
stack, so `conftest.py` runs it after every other test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case
from schemathesis.core.result import Err
from schemathesis.schemas import APIOperation as GenericOperation

from services.identity.permissions import Role
from tests.factories import register_and_login

EXAMPLES_PER_OPERATION = {"anonymous": 3, "investor": 10, "every role": 10}
"""An anonymous caller is refused before most handlers run: a few requests show it is refused cleanly."""
APIOperation = GenericOperation[Any, Any, Any, Any]

SKIPPED_PATHS = ("/v1/auth/logout",)
"""Logging out would revoke the investor's own session halfway through the run."""


@dataclass
class FuzzReport:
    calls: int = 0
    operations: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)


def fuzz(base_url: str, callers: dict[str, dict[str, str]]) -> FuzzReport:
    """Send generated requests for every operation as every caller (blocking: run it in a thread)."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    report = FuzzReport()
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            report.failures.append(f"the schema has an unusable operation: {result.err()}")
            continue
        operation = result.ok()
        if operation.path in SKIPPED_PATHS:
            continue
        report.operations.add(operation.label)
        for who, headers in callers.items():
            _fuzz_operation(operation, base_url, who, headers, report)
    return report


def _fuzz_operation(
    operation: APIOperation, base_url: str, who: str, headers: dict[str, str], report: FuzzReport
) -> None:
    @settings(
        max_examples=EXAMPLES_PER_OPERATION[who],
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def send(case: Case[APIOperation]) -> None:
        response = case.call(base_url=base_url, headers=headers, timeout=60)
        report.calls += 1
        content_type = (response.headers.get("content-type") or [""])[0]
        if response.status_code >= 500 or (
            response.status_code >= 400 and not content_type.startswith("application/problem+json")
        ):
            report.failures.append(
                f"{operation.label} as {who}: {response.status_code} {content_type}\n"
                f"  {case.as_curl_command()}\n  {response.text[:300]}"
            )

    send()


async def test_no_generated_request_gets_a_server_error(
    api: httpx.AsyncClient, token_for: Callable[..., dict[str, str]]
) -> None:
    investor = await register_and_login(api)
    everything = await register_and_login(api)
    callers = {
        "anonymous": {},
        "investor": investor.headers,
        "every role": token_for(everything.id, *Role, mfa=True),
    }
    report = await asyncio.to_thread(fuzz, str(api.base_url).rstrip("/"), callers)
    assert len(report.operations) >= 80, sorted(report.operations)  # the whole document, not a stub of it
    assert report.calls >= len(report.operations) * len(callers)
    assert report.failures == [], "\n".join(report.failures[:20])
    assert (await api.get("/v1/me", headers=investor.headers)).status_code == 200  # the run kept its callers
