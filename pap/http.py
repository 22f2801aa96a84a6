"""Outbound HTTP clients (provider adapters, sandbox webhooks) that share one TLS context."""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def _tls() -> ssl.SSLContext:
    return httpx.create_ssl_context()


def http_client(*, timeout: float) -> httpx.AsyncClient:
    """A short-lived client for one call or delivery.

    Building the TLS context (loading the CA bundle) is most of the cost of a new
    `httpx.AsyncClient`, about 10 ms; every client here reuses one.
    """
    return httpx.AsyncClient(timeout=timeout, verify=_tls())
