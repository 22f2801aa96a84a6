"""The diagnostic echo: a row written by the API, processed by a workflow, confirmed by a consumer."""

from services.diagnostics.echo import (
    create_echo,
    get_echo,
    mark_consumed,
    mark_processed,
)

__all__ = ["create_echo", "get_echo", "mark_consumed", "mark_processed"]
