"""platform: the outbox wakes the relay itself (a statement trigger NOTIFYs on insert)

Each transaction that wrote events used to send its own `NOTIFY pap_outbox`: one more
round trip on every order and deal step. The trigger does the same inside the INSERT.

Revision ID: 0012_outbox_notify_trigger
Revises: 0011_documents_replaceable
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012_outbox_notify_trigger"
down_revision: str | Sequence[str] | None = "0011_documents_replaceable"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION platform.notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('pap_outbox', '');
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER outbox_event_notify AFTER INSERT ON platform.outbox_event
        FOR EACH STATEMENT EXECUTE FUNCTION platform.notify_outbox()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER outbox_event_notify ON platform.outbox_event")
    op.execute("DROP FUNCTION platform.notify_outbox()")
