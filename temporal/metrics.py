"""Prometheus metrics for activities, recorded by a worker interceptor."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Histogram
from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

ACTIVITY_DURATION = Histogram("pap_activity_duration_seconds", "Activity execution time", ["activity", "outcome"])
ACTIVITY_ATTEMPTS = Counter("pap_activity_attempts_total", "Activity attempts", ["activity"])


class _MetricsActivityInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        name = activity.info().activity_type
        ACTIVITY_ATTEMPTS.labels(name).inc()
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await super().execute_activity(input)
            outcome = "ok"
            return result
        finally:
            ACTIVITY_DURATION.labels(name, outcome).observe(time.perf_counter() - started)


class ActivityMetricsInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _MetricsActivityInbound(next)
