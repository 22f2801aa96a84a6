"""Small asyncio helpers shared by long-running loops and request handlers."""

from __future__ import annotations

import asyncio


async def wait_any(*events: asyncio.Event, timeout: float | None) -> bool:
    """Wait until one of `events` is set or `timeout` seconds pass; True when one is set.

    Callers use it to sleep between polls or backoffs yet wake at once on a stop
    request or a notification, without leaving waiter tasks behind.
    """
    if any(event.is_set() for event in events):
        return True
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return any(event.is_set() for event in events)
