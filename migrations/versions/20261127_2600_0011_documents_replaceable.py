"""documents: a voided document of a deal may be replaced (backup buyer)

Revision ID: 0011_documents_replaceable
Revises: 0010_admin_ops
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_documents_replaceable"
down_revision: str | Sequence[str] | None = "0010_admin_ops"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("uq_document_deal_id_kind", "document", schema="documents", type_="unique")
    op.create_index(
        "uq_document_deal_id_kind_live",
        "document",
        ["deal_id", "kind"],
        unique=True,
        schema="documents",
        postgresql_where=sa.text("status <> 'voided'"),
    )


def downgrade() -> None:
    op.drop_index("uq_document_deal_id_kind_live", table_name="document", schema="documents")
    op.create_unique_constraint("uq_document_deal_id_kind", "document", ["deal_id", "kind"], schema="documents")
