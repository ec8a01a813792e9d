"""Endorsements: organisations that publicly endorse a petition, each a leaf of kind 0x06;
and the signature count of each checkpoint, which is no longer its size minus one.

Existing checkpoints keep a NULL count: every leaf of theirs but the header is a signature.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the endorsement table and checkpoint.signatures."""
    op.create_table(
        "endorsement",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "petition_id",
            sa.Integer(),
            sa.ForeignKey("petition.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("name_km", sa.String(200), nullable=False),
        sa.Column("name_en", sa.String(200), nullable=False),
        sa.Column("website", sa.String(300), nullable=True),
        sa.Column("contact", sa.String(300), nullable=True),
        sa.Column("record", sa.LargeBinary(), nullable=True),
        sa.Column("leaf_index", sa.BigInteger(), nullable=True),
        sa.Column("withdrawal", sa.LargeBinary(), nullable=True),
        sa.Column("withdrawal_leaf_index", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("status IN ('requested', 'approved')", name="endorsement_status"),
    )
    op.create_index("ix_endorsement_petition_id", "endorsement", ["petition_id"])
    op.add_column("checkpoint", sa.Column("signatures", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    """Drop them again."""
    with op.batch_alter_table("checkpoint") as batch:
        batch.drop_column("signatures")
    op.drop_index("ix_endorsement_petition_id", "endorsement")
    op.drop_table("endorsement")
