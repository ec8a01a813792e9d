"""The campaign after signing: organisers' updates, deliveries and responses, goal steps.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add petition_update, timeline_event, petition.goal_steps and petition.closed_on."""
    op.create_table(
        "petition_update",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "petition_id",
            sa.Integer(),
            sa.ForeignKey("petition.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("posted_on", sa.Date(), nullable=False),
        sa.Column("texts", sa.JSON(), nullable=False),
    )
    op.create_index("ix_petition_update_petition_id", "petition_update", ["petition_id"])
    op.create_table(
        "timeline_event",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "petition_id",
            sa.Integer(),
            sa.ForeignKey("petition.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("institution", sa.String(200), nullable=False),
        sa.Column("received_by", sa.String(200), nullable=True),
        sa.Column("how", sa.String(200), nullable=True),
        sa.Column("summary", sa.String(2000), nullable=True),
        sa.Column("note", sa.String(2000), nullable=True),
        sa.Column("attachment_sha256", sa.String(64), nullable=True),
        sa.Column("attachment_type", sa.String(40), nullable=True),
        sa.CheckConstraint("kind IN ('delivery', 'response')", name="timeline_kind"),
    )
    op.create_index("ix_timeline_event_petition_id", "timeline_event", ["petition_id"])
    op.add_column("petition", sa.Column("goal_steps", sa.JSON(), nullable=True))
    op.add_column("petition", sa.Column("closed_on", sa.Date(), nullable=True))


def downgrade() -> None:
    """Drop them again."""
    # Not a batch: rebuilding petition on SQLite would delete its leaves by cascade.
    op.drop_column("petition", "closed_on")
    op.drop_column("petition", "goal_steps")
    op.drop_index("ix_timeline_event_petition_id", "timeline_event")
    op.drop_table("timeline_event")
    op.drop_index("ix_petition_update_petition_id", "petition_update")
    op.drop_table("petition_update")
