"""delivery fencing: claim counter, redeliver during a claim, stale attempts

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTED = sa.text("NOT stale")


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("claims", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column(
                "redeliver_requested", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(
            sa.Column("stale", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    # Attempts numbered twice (two workers under one lapsed lease): the latest one counts.
    op.execute(
        """
        UPDATE attempts SET stale = true
        WHERE delivery_id IS NOT NULL AND EXISTS (
            SELECT 1 FROM attempts AS later
            WHERE later.delivery_id = attempts.delivery_id
              AND later.attempt = attempts.attempt AND later.id > attempts.id)
        """
    )
    op.create_index(
        "uq_attempts_delivery_id_attempt",
        "attempts",
        ["delivery_id", "attempt"],
        unique=True,
        postgresql_where=_COUNTED,
        sqlite_where=_COUNTED,
    )


def downgrade() -> None:
    op.drop_index("uq_attempts_delivery_id_attempt", table_name="attempts")
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("stale")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("redeliver_requested")
        batch.drop_column("claims")
