"""Withdrawals: a signer's request to take back a counted signature, until the next seal
appends its kind 0x03 leaf.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add pending_withdrawal (without SQLite's rowid, like the other pending rows)."""
    op.create_table(
        "pending_withdrawal",
        sa.Column(
            "petition_id",
            sa.Integer(),
            sa.ForeignKey("petition.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("commitment", sa.LargeBinary(32), primary_key=True),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    """Drop it again."""
    op.drop_table("pending_withdrawal")
