"""payments: a ledger account is identified by (code, currency), not by code alone

`external:bank`, `platform:fees` and every user's or company's account were fixed to
the currency that first used them, so a payment in a second currency could never be
booked. The same code now exists once per currency, as TigerBeetle's ledgers and
Formance's assets keep one balance per asset.

The downgrade fails while any code is held in two currencies: it cannot merge them.

Revision ID: 0014_account_per_currency
Revises: 0013_outbox_parked_events
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014_account_per_currency"
down_revision: str | Sequence[str] | None = "0013_outbox_parked_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_unique_constraint("uq_account_code_currency", "account", ["code", "currency"], schema="payments")
    op.drop_constraint("uq_account_code", "account", type_="unique", schema="payments")


def downgrade() -> None:
    op.create_unique_constraint("uq_account_code", "account", ["code"], schema="payments")
    op.drop_constraint("uq_account_code_currency", "account", type_="unique", schema="payments")
