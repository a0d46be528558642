"""Alembic environment: migrations run on the connection `store.db.migrate` hands over."""

from __future__ import annotations

from alembic import context

from concurrent_mlflow.store.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
