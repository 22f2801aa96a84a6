"""The `Prefer` request header (RFC 7240): only the `wait` preference, for long polling.

Preferences are hints: anything malformed is ignored, never an error. The first
`wait` counts when it is given more than once (RFC 7240, section 2).
"""

from __future__ import annotations

from collections.abc import Iterable

MAX_WAIT_SECONDS = 30
"""Well under common proxy and client read timeouts (often 60 s), so a held request is never cut off."""


def wait_seconds(headers: Iterable[str], *, cap: int = MAX_WAIT_SECONDS) -> int | None:
    """The requested `wait=N` in whole seconds, capped; None when absent, malformed or zero."""
    for header in headers:
        for preference in header.split(","):
            name, _, value = preference.split(";", 1)[0].partition("=")
            if name.strip().lower() != "wait":
                continue
            value = value.strip().strip('"')
            if not (value.isascii() and value.isdigit()):
                return None
            seconds = min(int(value), cap)
            return seconds or None
    return None
