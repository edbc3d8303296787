"""``webhooks db upgrade`` creates or upgrades the schema, repeatably, on Postgres and SQLite."""

import json
import os
import subprocess
import sys
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from tests import services
from webhooks.core.crypto import open_headers
from webhooks.history import partitions
from webhooks.models import Base
from webhooks.ops.migrate import alembic_config

_TABLES = {
    "tenants",
    "api_tokens",
    "event_types",
    "endpoints",
    "events",
    "deliveries",
    "attempts",
    "attempt_hours",
    "rolled_up_hours",
    "console_sessions",
    "portal_links",
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
        tables = inspect(engine).get_table_names()
        assert {name for name in tables if not partitions.is_partition(name)} == _TABLES
        engine.dispose()
    finally:
        services.drop_database(admin_url, name)


def test_migrations_match_the_models() -> None:
    engine = create_engine(os.environ["WEBHOOKS_DATABASE_URL"])
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_name": partitions.compared}
        )
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_revision_0007_seals_credential_headers_stored_in_plaintext_and_back() -> None:
    admin_url = os.environ["WEBHOOKS_TEST_ADMIN_DATABASE_URL"]
    name = f"webhooks_seal_{os.getpid()}"
    url = services.create_database(admin_url, name)
    engine = create_engine(url)
    plain = {"Authorization": "Bearer plain-0007", "X-Tenant": "t1"}
    try:
        config = alembic_config(url)
        command.upgrade(config, "0004")
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO tenants VALUES ('ten_1', 'acme', '', now(), now())")
            )
            connection.execute(
                text(
                    "INSERT INTO endpoints (id, tenant_id, url, description, event_types, "
                    "enabled, secret, headers, content_type, timeout_seconds, created_at, "
                    "updated_at) VALUES ('ep_1', 'ten_1', 'https://r.example/', '', '[]', "
                    "true, 'x', CAST(:headers AS jsonb), 'application/json', 10, now(), now())"
                ),
                {"headers": json.dumps(plain)},
            )

        def stored() -> str:
            with engine.connect() as connection:
                return str(connection.execute(text("SELECT headers::text FROM endpoints")).scalar())

        command.upgrade(config, "head")
        assert "plain-0007" not in stored() and "t1" in stored()
        assert open_headers(json.loads(stored())) == plain
        command.downgrade(config, "0004")
        assert json.loads(stored()) == plain
    finally:
        engine.dispose()
        services.drop_database(admin_url, name)
