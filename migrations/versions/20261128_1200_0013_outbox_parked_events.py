"""platform: the relay parks an outbox event the broker can never take (failed_at, error)

A record over the producer's size limit failed every attempt, so the relay retried
it forever and published nothing behind it. Such a row is now set aside with the
reason, and skipped.

Revision ID: 0013_outbox_parked_events
Revises: 0012_outbox_notify_trigger
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_outbox_parked_events"
down_revision: str | Sequence[str] | None = "0012_outbox_notify_trigger"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("outbox_event", sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True), schema="platform")
    op.add_column("outbox_event", sa.Column("error", sa.Text(), nullable=True), schema="platform")


def downgrade() -> None:
    op.drop_column("outbox_event", "error", schema="platform")
    op.drop_column("outbox_event", "failed_at", schema="platform")
