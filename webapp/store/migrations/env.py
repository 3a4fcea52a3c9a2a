"""Alembic's entry point. Atelier runs migrations itself, on a connection it opened
(`webapp.store.migrate.upgrade`); there is no alembic.ini and no logging set-up here."""

from alembic import context

from webapp.store.tables import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite changes a table by copying it; batch mode does that for later revisions.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
