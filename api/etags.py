"""Entity tags and `If-None-Match` (RFC 9110, sections 8.8.3 and 13.1.2) for JSON representations."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from starlette.responses import Response

_ENTITY_TAG = re.compile(r'(?:W/)?"([^"]*)"')


def etag_of(body: bytes) -> str:
    """A strong validator: the same bytes always give the same tag, in every API process."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def none_match_tags(headers: Iterable[str]) -> list[str] | None:
    """The tags of `If-None-Match` headers (weak markers dropped, `*` kept); None when there is no usable one."""
    tags: list[str] = []
    for header in headers:
        if header.strip() == "*":
            tags.append("*")
        else:
            tags.extend(f'"{opaque}"' for opaque in _ENTITY_TAG.findall(header))
    return tags or None


def matches(tags: list[str] | None, etag: str) -> bool:
    """Whether the client's copy is current (weak comparison, as If-None-Match uses): answer 304."""
    if not tags:
        return False
    opaque = etag.removeprefix("W/")
    return any(tag == "*" or tag == opaque for tag in tags)


def conditional_response(
    body: bytes, etag: str, tags: list[str] | None, headers: dict[str, str] | None = None
) -> Response:
    """200 with the JSON body, or 304 without one when the client's tag is current; both carry the ETag."""
    headers = {"ETag": etag} | (headers or {})
    if matches(tags, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)
