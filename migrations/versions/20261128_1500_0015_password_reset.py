"""identity: password resets (a one-time emailed link per request)

Revision ID: 0015_password_reset
Revises: 0014_account_per_currency
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_password_reset"
down_revision: str | Sequence[str] | None = "0014_account_per_currency"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "password_reset",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("requested_ip", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["identity.user.id"], name=op.f("fk_password_reset_user_id_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_password_reset")),
        schema="identity",
    )
    op.create_index(
        op.f("ix_identity_password_reset_user_id"), "password_reset", ["user_id"], unique=False, schema="identity"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_identity_password_reset_user_id"), table_name="password_reset", schema="identity")
    op.drop_table("password_reset", schema="identity")
