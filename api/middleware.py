"""Request ids (header, logs, traces) and Prometheus HTTP metrics."""

from __future__ import annotations

import time
import uuid

from opentelemetry import trace
from prometheus_client import Counter, Histogram
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response

from pap.telemetry import request_id_var

HTTP_REQUESTS = Counter("pap_http_requests_total", "HTTP requests", ["method", "route", "status"])
HTTP_DURATION = Histogram("pap_http_request_duration_seconds", "HTTP request duration", ["method", "route"])

REQUEST_ID_HEADER = "X-Request-ID"


class RequestContextMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if 0 < len(incoming) <= 128 and incoming.isprintable() else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        trace.get_current_span().set_attribute("pap.request_id", request_id)
        started = time.perf_counter()
        try:
            response = await call_next(request)
        finally:
            request_id_var.reset(token)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        HTTP_REQUESTS.labels(request.method, template, str(response.status_code)).inc()
        HTTP_DURATION.labels(request.method, template).observe(time.perf_counter() - started)
        response.headers[REQUEST_ID_HEADER] = request_id
        return response
