"""The domain error family; the API renders each as an RFC 9457 problem.

    DomainError (500, generic)
    ├── InvalidInput (422)      input the client can fix
    ├── NotFound (404)          absent, or hidden from this caller
    ├── Conflict (409)          the current state forbids it
    ├── Unauthenticated (401)   no valid credentials
    ├── Forbidden (403)         authenticated, not allowed
    └── TooManyRequests (429)   throttled

Each context subclasses these with a specific `type` slug
(e.g. `insufficient-shares`), which becomes the problem type URI.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.extra = extra


class InvalidInput(DomainError):
    status = 422
    type = "invalid-input"
    title = "The request is not valid"


class NotFound(DomainError):
    status = 404
    type = "not-found"
    title = "Not found"


class Conflict(DomainError):
    status = 409
    type = "conflict"
    title = "Conflict with the current state"


class Unauthenticated(DomainError):
    status = 401
    type = "unauthenticated"
    title = "Authentication required"


class Forbidden(DomainError):
    status = 403
    type = "forbidden"
    title = "Not allowed"


class TooManyRequests(DomainError):
    status = 429
    type = "too-many-requests"
    title = "Too many requests"
