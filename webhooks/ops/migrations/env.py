"""Alembic environment: migrate the configured database (or the connection handed in)."""

from alembic import context
from sqlalchemy import Connection

from webhooks.core.db import engine_for
from webhooks.history import partitions
from webhooks.models import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=partitions.compared,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "migrate.py sets sqlalchemy.url"
    with engine_for(url).connect() as connection:
        _run(connection)


run_migrations_online()
