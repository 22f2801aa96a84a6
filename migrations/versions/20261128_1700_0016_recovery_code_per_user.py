"""identity: a recovery code is unique per user, not across users (two users may draw the same code)

Revision ID: 0016_recovery_code_per_user
Revises: 0015_password_reset
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016_recovery_code_per_user"
down_revision: str | Sequence[str] | None = "0015_password_reset"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("uq_recovery_code_code_hash", "recovery_code", schema="identity", type_="unique")
    op.create_unique_constraint(
        "uq_recovery_code_user_id_code_hash", "recovery_code", ["user_id", "code_hash"], schema="identity"
    )


def downgrade() -> None:
    op.drop_constraint("uq_recovery_code_user_id_code_hash", "recovery_code", schema="identity", type_="unique")
    op.create_unique_constraint("uq_recovery_code_code_hash", "recovery_code", ["code_hash"], schema="identity")
