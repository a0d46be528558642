"""runs carry their driver's lease: who drives the run and until when (the database's clock)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Runs from before this revision have no driver: they belong to the server's engine, as before.
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("driver", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("driver_expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("driver_expires_at")
        batch_op.drop_column("driver")
