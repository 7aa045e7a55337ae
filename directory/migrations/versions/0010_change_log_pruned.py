"""The change log is pruned: where up to, so that an index behind the pruned rows is compared whole with the database.

Revision ID: 0010
Revises: 0009
Created: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create change_log_pruned, empty: nothing was pruned yet."""
    op.create_table('change_log_pruned',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('through', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    """Drop change_log_pruned."""
    op.drop_table('change_log_pruned')
