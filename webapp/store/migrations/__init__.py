"""Alembic migrations, shipped inside the package and applied on start (`webapp.store.migrate`)."""
