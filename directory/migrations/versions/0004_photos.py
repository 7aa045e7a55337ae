"""Listing photos: stored in the database by content hash, named on the listing.

Revision ID: 0004
Revises: 0003
Created: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create photos; add listings.photo, empty for every existing listing."""
    op.create_table('photos',
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('digest')
    )
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('photo', sa.String(length=64), server_default='', nullable=False))


def downgrade() -> None:
    """Drop listings.photo and photos."""
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.drop_column('photo')
    op.drop_table('photos')
