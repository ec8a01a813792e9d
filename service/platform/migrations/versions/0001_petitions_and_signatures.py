"""Petitions, dedup tokens and pending signatures.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the first tables."""
    op.create_table(
        "petition",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("slug", sa.String(64), nullable=False, unique=True),
        sa.Column("origin", sa.String(300), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("texts", sa.JSON(), nullable=False),
        sa.Column("goal", sa.Integer(), nullable=False),
        sa.Column("opens_on", sa.Date(), nullable=True),
        sa.Column("closes_on", sa.Date(), nullable=True),
        sa.Column("identifier_mode", sa.String(8), nullable=False),
        sa.Column("verification_mode", sa.String(8), nullable=False),
        sa.Column("region", sa.String(2), nullable=False),
        sa.Column("salt", sa.LargeBinary(16), nullable=False),
        sa.Column("wrapped_dedup_key", sa.LargeBinary(64), nullable=True),
        sa.Column("argon2_time_cost", sa.Integer(), nullable=False),
        sa.Column("argon2_memory_kib", sa.Integer(), nullable=False),
        sa.Column("argon2_parallelism", sa.Integer(), nullable=False),
        sa.Column("details_public_key", sa.LargeBinary(32), nullable=False),
        sa.Column("created_on", sa.Date(), nullable=False),
        sa.CheckConstraint(
            "status IN ('draft', 'open', 'closed', 'forgotten')", name="petition_status"
        ),
        sa.CheckConstraint(
            "identifier_mode IN ('email', 'phone', 'none')", name="petition_identifier_mode"
        ),
        sa.CheckConstraint(
            "verification_mode IN ('none', 'email')", name="petition_verification_mode"
        ),
        sa.CheckConstraint("goal > 0", name="petition_goal_positive"),
    )
    op.create_table(
        "dedup_token",
        sa.Column(
            "petition_id",
            sa.Integer(),
            sa.ForeignKey("petition.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("token", sa.LargeBinary(32), primary_key=True),
    )
    op.create_table(
        "pending_signature",
        sa.Column("commitment", sa.LargeBinary(32), primary_key=True),
        sa.Column(
            "petition_id",
            sa.Integer(),
            sa.ForeignKey("petition.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("details_ciphertext", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_pending_signature_petition_id", "pending_signature", ["petition_id"])


def downgrade() -> None:
    """Drop the first tables."""
    op.drop_table("pending_signature")
    op.drop_table("dedup_token")
    op.drop_table("petition")
