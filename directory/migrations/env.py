"""Alembic's entry point for this project's migrations; run through directory.migrate, never offline."""

from __future__ import annotations

from alembic import context

from directory import models
from directory.db import Base

assert models  # imported for its tables, which Base.metadata then holds

if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported: run `flask --app app db upgrade`")

# directory.migrate passes an open connection inside its transaction (and, on PostgreSQL, its advisory lock).
context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite can only change a table by copying it; batch mode does that
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
