"""Photo pledges: each petition's photo setting, and each checkpoint's count of them.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add petition.photos (every petition so far: off) and checkpoint.photos."""
    with op.batch_alter_table("petition") as batch:
        batch.add_column(sa.Column("photos", sa.String(8), nullable=False, server_default="off"))
    op.add_column("checkpoint", sa.Column("photos", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    """Drop them again."""
    op.drop_column("checkpoint", "photos")
    with op.batch_alter_table("petition") as batch:
        batch.drop_column("photos")
