"""Logs, traces and metrics for every process.

structlog renders JSON (or a pretty console in a terminal) and stamps each line
with the current request id, workflow id and OpenTelemetry trace id. Traces go
to an OTLP endpoint when `PAP_OTLP_ENDPOINT` is set. Without one, only traces a
caller asked for (a sampled `traceparent`) are recorded; the rest still carry
trace ids (logs, events) but skip building spans nobody would collect.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from temporalio.contrib.opentelemetry import create_tracer_provider

from pap.settings import Settings

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_configured = False


def _add_context_ids(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    request_id = request_id_var.get()
    if request_id:
        event.setdefault("request_id", request_id)
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        event.setdefault("trace_id", format(span.trace_id, "032x"))
        event.setdefault("span_id", format(span.span_id, "016x"))
    try:
        from temporalio import activity, workflow

        if activity.in_activity():
            info = activity.info()
            event.setdefault("workflow_id", info.workflow_id)
            event.setdefault("activity", info.activity_type)
        elif workflow.in_workflow():
            event.setdefault("workflow_id", workflow.info().workflow_id)
    except RuntimeError:
        pass
    return event


def configure_logging(settings: Settings) -> None:
    """Route stdlib logging and structlog through one renderer."""
    as_json = settings.log_format == "json" or (settings.log_format == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_context_ids,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info if as_json else structlog.processors.StackInfoRenderer(),
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for noisy in ("aiokafka", "temporalio.activity", "uvicorn.access", "alembic", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def configure_tracing(settings: Settings, service_name: str) -> None:
    """Install the replay-safe tracer provider Temporal's plugin needs; export over OTLP when configured."""
    global _configured
    if _configured:
        return
    sampler = None if settings.otlp_endpoint else ParentBased(ALWAYS_OFF)
    provider = create_tracer_provider(sampler=sampler, resource=Resource.create({"service.name": service_name}))
    if settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter,
        )

        endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    _configured = True


def configure(settings: Settings, service_name: str) -> None:
    configure_logging(settings)
    configure_tracing(settings, service_name)
