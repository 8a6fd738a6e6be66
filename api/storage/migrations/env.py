"""Alembic runs the migrations on the connection `api.storage.database.upgrade` hands it."""

from alembic import context

from api.storage.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
