"""How an activity reports a domain refusal: a failure Temporal does not retry, since a retry gets the same answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from temporalio.exceptions import ApplicationError

from services.errors import DomainError

P = ParamSpec("P")
R = TypeVar("R")


def business_failure(error: DomainError) -> ApplicationError:
    """A domain refusal as a non-retryable failure that keeps its problem type, status and detail."""
    return ApplicationError(
        error.detail,
        {"status": error.status, "type": error.type, "title": error.title, "errors": error.errors},
        type=error.type,
        non_retryable=True,
    )


def refusals_not_retried(step: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Decorate an activity whose domain refusals end the step (the workflow decides what follows)."""

    @wraps(step)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await step(*args, **kwargs)
        except DomainError as error:
            raise business_failure(error) from error

    return run
