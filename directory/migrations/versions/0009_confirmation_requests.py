"""Confirmation requests: each email asking a therapist to confirm a listing, and the listings that opted out.

Revision ID: 0009
Revises: 0008
Created: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create confirmation_requests and confirmation_opt_outs, empty: the schedule asks the due listings."""
    op.create_table('confirmation_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('listing_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('listing_stamp', sa.DateTime(), nullable=False),
    sa.Column('was_stale', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('queued_at', sa.DateTime(), nullable=True),
    sa.Column('attempted_at', sa.DateTime(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.Column('answer', sa.String(length=20), nullable=False),
    sa.Column('answered_at', sa.DateTime(), nullable=True),
    sa.Column('answered_in_time', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_confirmation_requests_listing_id', 'confirmation_requests', ['listing_id'])
    op.create_index('ix_confirmation_requests_created_at', 'confirmation_requests', ['created_at'])
    op.create_table('confirmation_opt_outs',
    sa.Column('listing_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('listing_id')
    )


def downgrade() -> None:
    """Drop both."""
    op.drop_table('confirmation_opt_outs')
    op.drop_index('ix_confirmation_requests_created_at', table_name='confirmation_requests')
    op.drop_index('ix_confirmation_requests_listing_id', table_name='confirmation_requests')
    op.drop_table('confirmation_requests')
