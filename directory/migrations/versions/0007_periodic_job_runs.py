"""Periodic jobs: when each was last started, so that any number of processes ticking runs each once per interval.

Revision ID: 0007
Revises: 0006
Created: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create periodic_job_runs, empty: every periodic job is due at the first tick."""
    op.create_table('periodic_job_runs',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('last_run_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    """Drop periodic_job_runs."""
    op.drop_table('periodic_job_runs')
