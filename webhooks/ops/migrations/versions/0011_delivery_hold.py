"""deliveries: what holds an open delivery (a claim, a deferral behind the in-flight cap)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DEFERRED = sa.text("hold = 'deferred' AND status IN ('pending', 'retrying')")


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("hold", sa.String(length=8), nullable=True))
    op.create_index(
        "ix_deliveries_deferred",
        "deliveries",
        ["endpoint_id", "id"],
        postgresql_where=_DEFERRED,
        sqlite_where=_DEFERRED,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_deferred", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("hold")
