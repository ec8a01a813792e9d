"""Account recovery: an account whose password an operator reset must choose a new one.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add account.must_change_password (false for every existing account)."""
    with op.batch_alter_table("account") as batch:
        batch.add_column(
            sa.Column(
                "must_change_password", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )


def downgrade() -> None:
    """Drop it again."""
    with op.batch_alter_table("account") as batch:
        batch.drop_column("must_change_password")
