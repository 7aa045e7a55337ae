"""Import state every node shares: the signature of the import lock's holder, and the uploads awaiting confirmation.

Revision ID: 0011
Revises: 0010
Created: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create import_lock_holder and pending_uploads, empty (uploads in the instance folder are previews to redo)."""
    op.create_table('import_lock_holder',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('backend_pid', sa.Integer(), nullable=False),
    sa.Column('holder', sa.String(length=254), nullable=False),
    sa.Column('since', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('pending_uploads',
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('errors_csv', sa.Text(), nullable=False),
    sa.Column('kept_at', sa.DateTime(), nullable=False),
    sa.Column('confirmed', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('digest')
    )


def downgrade() -> None:
    """Drop both."""
    op.drop_table('pending_uploads')
    op.drop_table('import_lock_holder')
