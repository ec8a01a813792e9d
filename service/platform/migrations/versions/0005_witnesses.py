"""Witnesses: who cosigns each petition's checkpoints, their cosignatures, the quorum.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the witness and cosignature tables and the petition's quorum and halt."""
    with op.batch_alter_table("petition") as batch:
        batch.add_column(sa.Column("witness_quorum", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("witness_halt", sa.String(400), nullable=True))
    op.create_table(
        "witness",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "petition_id",
            sa.Integer(),
            sa.ForeignKey("petition.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("url", sa.String(300), nullable=False),
        sa.Column("vkey", sa.String(400), nullable=False),
        sa.Column("frozen", sa.Boolean(), nullable=False),
        sa.Column("removed", sa.Boolean(), nullable=False),
        sa.Column("known_size", sa.BigInteger(), nullable=False),
        sa.Column("problem", sa.String(400), nullable=True),
        sa.UniqueConstraint("petition_id", "name", name="witness_name"),
        sa.UniqueConstraint("petition_id", "vkey", name="witness_vkey"),
    )
    op.create_index("ix_witness_petition_id", "witness", ["petition_id"])
    op.create_table(
        "cosignature",
        sa.Column(
            "petition_id",
            sa.Integer(),
            sa.ForeignKey("petition.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("size", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column(
            "witness_id",
            sa.Integer(),
            sa.ForeignKey("witness.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("lines", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    """Drop them again."""
    op.drop_table("cosignature")
    op.drop_index("ix_witness_petition_id", table_name="witness")
    op.drop_table("witness")
    with op.batch_alter_table("petition") as batch:
        batch.drop_column("witness_halt")
        batch.drop_column("witness_quorum")
