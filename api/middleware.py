"""Request ids (header, logs, traces), the request's trace context, and Prometheus HTTP metrics."""

from __future__ import annotations

import time
import uuid

from opentelemetry import trace
from opentelemetry.propagate import extract
from prometheus_client import Counter, Histogram
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pap.telemetry import request_id_var

HTTP_REQUESTS = Counter("pap_http_requests_total", "HTTP requests", ["method", "route", "status"])
HTTP_DURATION = Histogram("pap_http_request_duration_seconds", "HTTP request duration", ["method", "route"])

REQUEST_ID_HEADER = "X-Request-ID"
tracer = trace.get_tracer(__name__)


class RequestContextMiddleware:
    """Pure ASGI (Starlette's BaseHTTPMiddleware costs a task and a stream per request).

    With `start_spans` it opens the request's server span itself, continuing the caller's
    `traceparent`, so trace ids reach logs, events and workflows without the OpenTelemetry
    FastAPI instrumentation (installed only when spans are exported).
    """

    def __init__(self, app: ASGIApp, *, start_spans: bool = False) -> None:
        self.app = app
        self.start_spans = start_spans

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if self.start_spans:
            carrier = {name: value for name in ("traceparent", "tracestate") if (value := headers.get(name))}
            with tracer.start_as_current_span(
                f"HTTP {scope['method']}", context=extract(carrier), kind=trace.SpanKind.SERVER
            ):
                await self._handle(scope, receive, send, headers)
        else:
            await self._handle(scope, receive, send, headers)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, headers: Headers) -> None:
        incoming = headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if 0 < len(incoming) <= 128 and incoming.isprintable() else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        trace.get_current_span().set_attribute("pap.request_id", request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            HTTP_REQUESTS.labels(scope["method"], template, str(status)).inc()
            HTTP_DURATION.labels(scope["method"], template).observe(time.perf_counter() - started)
