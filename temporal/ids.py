"""Workflow ids are business ids, so a retried start finds the same workflow."""

from __future__ import annotations

import uuid


def deal_workflow_id(deal_id: uuid.UUID) -> str:
    return f"deal-{deal_id}"


def order_workflow_id(order_id: uuid.UUID) -> str:
    return f"order-{order_id}"


def echo_workflow_id(echo_id: uuid.UUID) -> str:
    return f"echo-{echo_id}"
