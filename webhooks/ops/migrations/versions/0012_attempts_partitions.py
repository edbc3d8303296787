"""attempts partitioned by the delivery's creation day on Postgres (webhooks.history.partitions)

Postgres: the table is rebuilt as ``PARTITION BY RANGE (delivery_id)`` with a partition per
day that has attempts, the days ahead, and the default partition of the attempts without a
delivery; every row is copied, then the indexes and foreign keys are built on the copy. The
primary key on ``id`` alone cannot exist on a partitioned table (it would have to include
``delivery_id``, which is NULL for a PING): ``UNIQUE (id, delivery_id)`` takes its place as
the retried record's conflict target. The copy holds ``attempts`` locked for its length
(about a minute per million attempts on 2 cores): run it while the workers are stopped.
SQLite: the table stays as it is and only gains the same unique index.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from webhooks.core import clock
from webhooks.history.partitions import DEFAULT, DEFAULT_CHECK, Partition, days_ahead

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FAILED = (
    "error IS NOT NULL OR response_status < 200 OR response_status >= 300"
    " OR response_status IS NULL"
)

#: Indexes and foreign keys of ``attempts`` (as in revisions 0001-0005), built after the copy.
_INDEXES = (
    "CREATE UNIQUE INDEX uq_attempts_id_delivery_id ON attempts (id, delivery_id)",
    "CREATE INDEX ix_attempts_delivery_id_id ON attempts (delivery_id, id)",
    "CREATE INDEX ix_attempts_endpoint_id_id ON attempts (endpoint_id, id)",
    f"CREATE INDEX ix_attempts_failed ON attempts (endpoint_id, id) WHERE {_FAILED}",
    "CREATE INDEX ix_attempts_started_at ON attempts (started_at)",
    "CREATE UNIQUE INDEX uq_attempts_delivery_id_attempt ON attempts (delivery_id, attempt)"
    " WHERE NOT stale",
    "ALTER TABLE attempts ADD CONSTRAINT fk_attempts_delivery_id_deliveries"
    " FOREIGN KEY (delivery_id) REFERENCES deliveries (id) ON DELETE CASCADE",
    "ALTER TABLE attempts ADD CONSTRAINT fk_attempts_endpoint_id_endpoints"
    " FOREIGN KEY (endpoint_id) REFERENCES endpoints (id) ON DELETE CASCADE",
    "ALTER TABLE attempts ADD CONSTRAINT fk_attempts_tenant_id_tenants"
    " FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE",
)


def _days_with_rows(connection: sa.Connection, table: str) -> list[Partition]:
    """The partitions ``table``'s attempts need: one index probe per day that has some."""
    partitions = []
    lowest = sa.text(f"SELECT min(delivery_id) FROM {table} WHERE delivery_id >= :bound")  # noqa: S608 - a constant
    found = connection.execute(lowest, {"bound": ""}).scalar()
    while found is not None:
        partition = Partition.of(found)
        partitions.append(partition)
        found = connection.execute(lowest, {"bound": partition.upper}).scalar()
    return partitions


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.create_index(
            "uq_attempts_id_delivery_id", "attempts", ["id", "delivery_id"], unique=True
        )
        return
    connection = op.get_bind()
    op.execute("LOCK TABLE attempts IN ACCESS EXCLUSIVE MODE")
    op.execute("ALTER TABLE attempts RENAME TO attempts_unpartitioned")
    op.execute(
        "CREATE TABLE attempts (LIKE attempts_unpartitioned INCLUDING DEFAULTS)"
        " PARTITION BY RANGE (delivery_id)"
    )
    op.execute(f"CREATE TABLE {DEFAULT} PARTITION OF attempts DEFAULT")
    op.execute(f"ALTER TABLE {DEFAULT} ADD CONSTRAINT {DEFAULT_CHECK} CHECK (delivery_id IS NULL)")
    needed = {p.day: p for p in _days_with_rows(connection, "attempts_unpartitioned")}
    needed.update((p.day, p) for p in days_ahead(clock.now().date()))
    for day in sorted(needed):
        op.execute(needed[day].create_sql())
    op.execute("INSERT INTO attempts SELECT * FROM attempts_unpartitioned")
    op.execute("DROP TABLE attempts_unpartitioned")
    for statement in _INDEXES:
        op.execute(statement)
    op.execute("ANALYZE attempts")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.drop_index("uq_attempts_id_delivery_id", table_name="attempts")
        return
    op.execute("LOCK TABLE attempts IN ACCESS EXCLUSIVE MODE")
    op.execute("ALTER TABLE attempts RENAME TO attempts_partitioned")
    op.execute("CREATE TABLE attempts (LIKE attempts_partitioned INCLUDING DEFAULTS)")
    op.execute("INSERT INTO attempts SELECT * FROM attempts_partitioned")
    op.execute("DROP TABLE attempts_partitioned")  # with its partitions
    op.execute("ALTER TABLE attempts ADD CONSTRAINT pk_attempts PRIMARY KEY (id)")
    for statement in _INDEXES[1:]:
        op.execute(statement)
