"""index for the per-endpoint in-flight cap

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 18:25:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = sa.text("status IN ('pending', 'retrying')")


def upgrade() -> None:
    op.create_index(
        "ix_deliveries_in_flight",
        "deliveries",
        ["endpoint_id", "locked_until"],
        postgresql_where=_OPEN,
        sqlite_where=_OPEN,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_in_flight", table_name="deliveries")
