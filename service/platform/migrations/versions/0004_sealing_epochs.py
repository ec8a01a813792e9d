"""Sealing epochs: pending signatures sealed to an epoch key, tokens written by the sealer.

The old pending rows (their tokens already written at signing) become
legacy_pending_signature, sealed by the next round. On SQLite the token table is rebuilt
without rowid, in token order. Petitions keep their dedup key wrapped under the master key
(no dedup_key_file) until `samleng init` moves it under a key file of its own.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _petition_fk(**kwargs: object) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "petition_id",
        sa.Integer(),
        sa.ForeignKey("petition.id", ondelete="CASCADE"),
        nullable=False,
        **kwargs,  # type: ignore[arg-type]
    )


def upgrade() -> None:
    """Add epochs, seal pending signatures to them, move the tokens out of rowid order."""
    with op.batch_alter_table("petition") as batch:
        batch.add_column(sa.Column("dedup_key_file", sa.String(40), nullable=True))
    op.create_table(
        "seal_epoch",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("public_key", sa.LargeBinary(32), nullable=False),
    )
    op.drop_index("ix_pending_signature_petition_id", table_name="pending_signature")
    op.rename_table("pending_signature", "legacy_pending_signature")
    op.create_table(
        "pending_signature",
        sa.Column("id", sa.LargeBinary(16), primary_key=True),
        _petition_fk(),
        sa.Column("epoch_id", sa.Integer(), sa.ForeignKey("seal_epoch.id"), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_pending_signature_petition_id", "pending_signature", ["petition_id"])
    op.create_index("ix_pending_signature_epoch_id", "pending_signature", ["epoch_id"])
    # When the sealer last did a periodic task (a UTC day, never a time).
    op.create_table(
        "maintenance",
        sa.Column("task", sa.String(40), primary_key=True),
        sa.Column("last_on", sa.Date(), nullable=False),
    )
    if op.get_bind().dialect.name == "sqlite":
        op.create_table(
            "dedup_token_sorted",
            _petition_fk(primary_key=True),
            sa.Column("token", sa.LargeBinary(32), primary_key=True),
            sqlite_with_rowid=False,
        )
        op.execute(
            "INSERT INTO dedup_token_sorted (petition_id, token) "
            "SELECT petition_id, token FROM dedup_token ORDER BY petition_id, token"
        )
        op.drop_table("dedup_token")
        op.rename_table("dedup_token_sorted", "dedup_token")


def downgrade() -> None:
    """Back to pending rows in the clear (only possible with none pending)."""
    op.drop_table("maintenance")
    op.drop_table("pending_signature")
    op.drop_table("seal_epoch")
    op.rename_table("legacy_pending_signature", "pending_signature")
    op.create_index("ix_pending_signature_petition_id", "pending_signature", ["petition_id"])
    with op.batch_alter_table("petition") as batch:
        batch.drop_column("dedup_key_file")
