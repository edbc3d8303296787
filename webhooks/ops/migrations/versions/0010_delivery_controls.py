"""delivery controls: endpoint filter, rate limit, ordering, circuit breaker; waiting deliveries

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_WAITING = sa.text("status IN ('pending', 'retrying') AND next_attempt_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        batch.add_column(sa.Column("filter", JSON, nullable=True))
        batch.add_column(sa.Column("rate_limit", sa.Double(), nullable=True))
        batch.add_column(
            sa.Column("ordering", sa.String(length=8), server_default="none", nullable=False)
        )
        batch.add_column(sa.Column("next_send_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("busy_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("circuit", sa.String(length=16), server_default="closed", nullable=False)
        )
        batch.add_column(
            sa.Column("circuit_failures", sa.Integer(), server_default="0", nullable=False)
        )
        batch.add_column(sa.Column("circuit_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("circuit_cooldown", sa.Integer(), nullable=True))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(
            sa.Column("admitted", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.create_index(
        "ix_deliveries_waiting",
        "deliveries",
        ["endpoint_id", "id"],
        postgresql_where=_WAITING,
        sqlite_where=_WAITING,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_waiting", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("admitted")
    with op.batch_alter_table("endpoints") as batch:
        for column in (
            "circuit_cooldown",
            "circuit_until",
            "circuit_failures",
            "circuit",
            "busy_until",
            "next_send_at",
            "ordering",
            "rate_limit",
            "filter",
        ):
            batch.drop_column(column)
