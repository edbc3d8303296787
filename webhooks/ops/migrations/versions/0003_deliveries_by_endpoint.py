"""history indexes: an endpoint's deliveries by id in any state; its failed attempts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 18:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FAILED = sa.text(
    "error IS NOT NULL OR response_status < 200 OR response_status >= 300"
    " OR response_status IS NULL"
)


def upgrade() -> None:
    op.create_index("ix_deliveries_endpoint_id_id", "deliveries", ["endpoint_id", "id"])
    op.create_index(
        "ix_attempts_failed",
        "attempts",
        ["endpoint_id", "id"],
        postgresql_where=_FAILED,
        sqlite_where=_FAILED,
    )


def downgrade() -> None:
    op.drop_index("ix_attempts_failed", table_name="attempts")
    op.drop_index("ix_deliveries_endpoint_id_id", table_name="deliveries")
