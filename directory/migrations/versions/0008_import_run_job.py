"""Import runs record the id of the queued job that runs them, so that the run's job is found, and only its own.

Revision ID: 0008
Revises: 0007
Created: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add import_runs.job_id, empty for the runs before it (none of them was queued)."""
    with op.batch_alter_table('import_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('job_id', sa.String(length=64), server_default='', nullable=False))


def downgrade() -> None:
    """Drop import_runs.job_id."""
    with op.batch_alter_table('import_runs', schema=None) as batch_op:
        batch_op.drop_column('job_id')
