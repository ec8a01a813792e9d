"""Organisations: a petition's organising organisations, the organisation an account acts
for, and which organisation each audit event was done for.

Existing accounts have no organisation and keep their per-petition grants; existing
events record none ("").

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add organisation and petition_organiser, account.organisation_id and
    audit_event.organisation."""
    op.create_table(
        "organisation",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("handle", sa.String(64), nullable=False, unique=True),
        sa.Column("name_km", sa.String(200), nullable=False),
        sa.Column("name_en", sa.String(200), nullable=False),
        sa.Column("website", sa.String(300), nullable=True),
        sa.Column("created_on", sa.Date(), nullable=False),
    )
    op.create_table(
        "petition_organiser",
        sa.Column(
            "petition_id",
            sa.Integer(),
            sa.ForeignKey("petition.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "organisation_id", sa.Integer(), sa.ForeignKey("organisation.id"), primary_key=True
        ),
        sa.Column("position", sa.Integer(), nullable=False),
    )
    op.create_index(
        "ix_petition_organiser_organisation_id", "petition_organiser", ["organisation_id"]
    )
    # Plain ALTER TABLE, not a batch: a batch rebuild of account on SQLite with foreign keys
    # on would delete its sessions and grants by cascade. SQLite takes the reference inside
    # the column's definition; Alembic would add it as a separate constraint, which it cannot.
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "ALTER TABLE account ADD COLUMN organisation_id INTEGER REFERENCES organisation (id)"
        )
    else:
        op.add_column(
            "account",
            sa.Column(
                "organisation_id", sa.Integer(), sa.ForeignKey("organisation.id"), nullable=True
            ),
        )
    op.create_index("ix_account_organisation_id", "account", ["organisation_id"])
    op.add_column(
        "audit_event",
        sa.Column("organisation", sa.String(64), nullable=False, server_default=""),
    )


def downgrade() -> None:
    """Drop them again."""
    with op.batch_alter_table("audit_event") as batch:
        batch.drop_column("organisation")
    op.drop_index("ix_account_organisation_id", "account")
    with op.batch_alter_table("account") as batch:
        batch.drop_column("organisation_id")
    op.drop_index("ix_petition_organiser_organisation_id", "petition_organiser")
    op.drop_table("petition_organiser")
    op.drop_table("organisation")
