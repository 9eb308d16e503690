"""Alembic environment: always driven from storage.migrate with a live connection."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from storage.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        # Two replicas starting together must not both run the same migration.
        connection.execute(text("SELECT pg_advisory_xact_lock(7244614)"))
    context.run_migrations()
