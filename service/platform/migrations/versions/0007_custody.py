"""Coalition custody: a petition may seal its details to k of n organisations' keys.

Existing petitions keep their one key (details_custody stays NULL): their records stay
version 1, byte for byte as before, so nothing is migrated.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add petition.details_custody (petition.json's version 2 ``details`` member)."""
    with op.batch_alter_table("petition") as batch:
        batch.add_column(sa.Column("details_custody", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Drop it again."""
    with op.batch_alter_table("petition") as batch:
        batch.drop_column("details_custody")
