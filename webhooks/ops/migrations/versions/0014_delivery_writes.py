"""delivery writes: fewer indexes covering every delivery row

Each attempt updates its delivery twice (the claim, the record), and neither update can be
HOT, so each one inserts into every index whose predicate its new row version matches. Two
of those indexes covered every row without being needed:

- ``(endpoint_id, status, id)`` beside ``(endpoint_id, id)``: merged into ``(endpoint_id,
  id) INCLUDE (status)`` (counts by state stay index-only) and a partial index of failed
  deliveries, which a row enters once;
- ``(created_at)``: retention finds old deliveries by id (ids are ULIDs: time) instead.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FAILED = sa.text("status = 'failed'")


def upgrade() -> None:
    op.create_index(
        "ix_deliveries_failed",
        "deliveries",
        ["endpoint_id", "id"],
        postgresql_where=_FAILED,
        sqlite_where=_FAILED,
    )
    op.drop_index("ix_deliveries_endpoint_id_status_id", table_name="deliveries")
    op.drop_index("ix_deliveries_created_at", table_name="deliveries")
    if op.get_context().dialect.name == "postgresql":
        op.create_index(
            "ix_deliveries_endpoint_id_id_status",
            "deliveries",
            ["endpoint_id", "id"],
            postgresql_include=["status"],
        )
        op.drop_index("ix_deliveries_endpoint_id_id", table_name="deliveries")
        op.execute(
            "ALTER INDEX ix_deliveries_endpoint_id_id_status RENAME TO ix_deliveries_endpoint_id_id"
        )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.drop_index("ix_deliveries_endpoint_id_id", table_name="deliveries")
        op.create_index("ix_deliveries_endpoint_id_id", "deliveries", ["endpoint_id", "id"])
    op.create_index("ix_deliveries_created_at", "deliveries", ["created_at"])
    op.create_index(
        "ix_deliveries_endpoint_id_status_id", "deliveries", ["endpoint_id", "status", "id"]
    )
    op.drop_index("ix_deliveries_failed", table_name="deliveries")
