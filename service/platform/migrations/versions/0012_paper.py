"""Paper signatures: each checkpoint's count of them, and who entered how many forms.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add checkpoint.paper and paper_tally."""
    op.add_column("checkpoint", sa.Column("paper", sa.BigInteger(), nullable=True))
    op.create_table(
        "paper_tally",
        sa.Column(
            "petition_id",
            sa.Integer(),
            sa.ForeignKey("petition.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("account", sa.String(64), primary_key=True),
        sa.Column("entered", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    """Drop them again."""
    op.drop_table("paper_tally")
    op.drop_column("checkpoint", "paper")
