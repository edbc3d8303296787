"""dead letters: failed deliveries whose dead letter is not yet received

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 08:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SENT = sa.text("status = 'failed' AND locked_until IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_deliveries_dead_letters",
        "deliveries",
        ["locked_until"],
        postgresql_where=_SENT,
        sqlite_where=_SENT,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_dead_letters", table_name="deliveries")
