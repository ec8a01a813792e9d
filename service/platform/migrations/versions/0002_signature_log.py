"""The signature log: leaves, stored tree hashes, signed checkpoints.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _petition_fk() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "petition_id",
        sa.Integer(),
        sa.ForeignKey("petition.id", ondelete="CASCADE"),
        primary_key=True,
    )


def upgrade() -> None:
    """Add the log tables and the petition's frozen header and log key."""
    with op.batch_alter_table("petition") as batch:
        batch.add_column(sa.Column("petition_json", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("wrapped_log_seed", sa.LargeBinary(64), nullable=True))
        batch.add_column(sa.Column("log_vkey", sa.String(400), nullable=True))
    op.create_table(
        "leaf",
        _petition_fk(),
        sa.Column("index", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("commitment", sa.LargeBinary(32), nullable=False),
        sa.Column("leaf", sa.LargeBinary(81), nullable=False),
        sa.Column("details_ciphertext", sa.LargeBinary(), nullable=True),
        sa.UniqueConstraint("petition_id", "commitment", name="leaf_commitment"),
    )
    op.create_table(
        "tree_node",
        _petition_fk(),
        sa.Column("level", sa.SmallInteger(), primary_key=True, autoincrement=False),
        sa.Column("index", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
    )
    op.create_table(
        "checkpoint",
        _petition_fk(),
        sa.Column("size", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("note", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    """Remove the log."""
    op.drop_table("checkpoint")
    op.drop_table("tree_node")
    op.drop_table("leaf")
    with op.batch_alter_table("petition") as batch:
        batch.drop_column("log_vkey")
        batch.drop_column("wrapped_log_seed")
        batch.drop_column("petition_json")
