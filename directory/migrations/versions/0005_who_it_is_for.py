"""Who a therapist sees and gender as a vocabulary: ages, client types and communities on each listing; gender
written as a slug, what names no gender kept in gender_unmapped; the specialties "couples" and "adolescents" moved
to client type "couples" and age "teens".

Revision ID: 0005
Revises: 0004
Created: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# What each moved specialty becomes: who the therapist sees is not a specialty.
MOVED = {"couples": ("client_types", "couples"), "adolescents": ("ages", "teens")}


def upgrade() -> None:
    """Add the columns, map every gender as written with the vocabulary's matcher, move the two specialties."""
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ages', sa.JSON(), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('client_types', sa.JSON(), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('communities', sa.JSON(), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('gender_unmapped', sa.String(length=40), server_default='', nullable=False))
    connection = op.get_bind()
    _map_genders(connection)
    _move_specialties(connection)


def _map_genders(connection: sa.Connection) -> None:
    # Imported here: the mapping is the vocabulary's, the one the CSV import uses.
    from directory.vocabulary import vocabulary

    written = connection.execute(sa.text("SELECT DISTINCT gender FROM listings WHERE gender <> ''")).scalars()
    for raw in list(written):
        found = vocabulary.match("gender", raw)
        slug, unmapped = (found[0], "") if len(found) == 1 else ("", "" if vocabulary.says_nothing(raw) else raw)
        connection.execute(sa.text("UPDATE listings SET gender = :slug, gender_unmapped = :unmapped "
                                   "WHERE gender = :raw"), {"slug": slug, "unmapped": unmapped, "raw": raw})


def _move_specialties(connection: sa.Connection) -> None:
    listings = sa.table("listings", sa.column("id", sa.Integer), sa.column("specialties", sa.JSON),
                        sa.column("ages", sa.JSON), sa.column("client_types", sa.JSON))
    written = sa.cast(listings.c.specialties, sa.Text)
    rows = connection.execute(sa.select(listings).where(sa.or_(*(written.like(f'%"{slug}"%') for slug in MOVED))))
    changes = []
    for row in rows.mappings():
        values = {"specialties": list(row["specialties"]), "ages": list(row["ages"]),
                  "client_types": list(row["client_types"])}
        for slug, (column, term) in MOVED.items():
            if slug in values["specialties"]:
                values["specialties"].remove(slug)
                if term not in values[column]:
                    values[column].append(term)
        changes.append({"key": row["id"], **values})
    if changes:
        connection.execute(sa.update(listings).where(listings.c.id == sa.bindparam("key")).values(
            {name: sa.bindparam(name) for name in ("specialties", "ages", "client_types")}), changes)


def downgrade() -> None:
    """Give gender back what was written where it named none, and drop the columns (a mapped gender stays its
    slug, so "Female" comes back as "woman"; ages, client types and communities are lost; the moved specialties
    are not put back)."""
    op.execute("UPDATE listings SET gender = gender_unmapped WHERE gender_unmapped <> ''")
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.drop_column('gender_unmapped')
        batch_op.drop_column('communities')
        batch_op.drop_column('client_types')
        batch_op.drop_column('ages')
