"""``webhooks db upgrade`` creates or upgrades the schema, repeatably, on Postgres and SQLite."""

import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from tests import services
from webhooks.models import Base

_TABLES = {
    "tenants",
    "api_tokens",
    "event_types",
    "endpoints",
    "events",
    "deliveries",
    "attempts",
    "alembic_version",
}


def _upgrade(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webhooks.ops.cli", "db", "upgrade"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_upgrade_twice_on_sqlite(tmp_path: Path) -> None:
    env = {"WEBHOOKS_DATABASE_URL": "", "WEBHOOKS_VAR_DIR": str(tmp_path)}
    for _ in range(2):
        result = _upgrade(env)
        assert result.returncode == 0, result.stderr
        assert "up to date" in result.stdout
    engine = create_engine(f"sqlite:///{tmp_path}/webhooks.sqlite3")
    assert set(inspect(engine).get_table_names()) == _TABLES


def test_upgrade_twice_on_a_fresh_postgres_database() -> None:
    admin_url = os.environ["WEBHOOKS_TEST_ADMIN_DATABASE_URL"]
    name = f"webhooks_migrate_{os.getpid()}"
    url = services.create_database(admin_url, name)
    try:
        for _ in range(2):
            result = _upgrade({"WEBHOOKS_DATABASE_URL": url})
            assert result.returncode == 0, result.stderr
        engine = create_engine(url)
        assert set(inspect(engine).get_table_names()) == _TABLES
        engine.dispose()
    finally:
        services.drop_database(admin_url, name)


def test_migrations_match_the_models() -> None:
    engine = create_engine(os.environ["WEBHOOKS_DATABASE_URL"])
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()
