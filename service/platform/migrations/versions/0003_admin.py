"""The admin: accounts, sessions, petition grants, the audit trail; checkpoint dates.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the organisers' tables and the day each checkpoint was published."""
    op.create_table(
        "account",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("wrapped_totp_secret", sa.LargeBinary(64), nullable=True),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_on", sa.Date(), nullable=False),
        sa.CheckConstraint("role IN ('admin', 'organiser')", name="account_role"),
    )
    op.create_table(
        "admin_session",
        sa.Column("id_hash", sa.LargeBinary(32), primary_key=True),
        sa.Column(
            "account_id",
            sa.Integer(),
            sa.ForeignKey("account.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_admin_session_account_id", "admin_session", ["account_id"])
    op.create_table(
        "petition_grant",
        sa.Column(
            "account_id",
            sa.Integer(),
            sa.ForeignKey("account.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "petition_id",
            sa.Integer(),
            sa.ForeignKey("petition.id", ondelete="CASCADE"),
            primary_key=True,
        ),
    )
    op.create_index("ix_petition_grant_petition_id", "petition_grant", ["petition_id"])
    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("petition_slug", sa.String(64), nullable=True),
        sa.Column("detail", sa.String(300), nullable=False),
    )
    op.create_index("ix_audit_event_petition_slug", "audit_event", ["petition_slug"])
    with op.batch_alter_table("checkpoint") as batch:
        batch.add_column(sa.Column("published_on", sa.Date(), nullable=True))


def downgrade() -> None:
    """Remove the organisers' tables and the checkpoint dates."""
    with op.batch_alter_table("checkpoint") as batch:
        batch.drop_column("published_on")
    op.drop_table("audit_event")
    op.drop_table("petition_grant")
    op.drop_table("admin_session")
    op.drop_table("account")
