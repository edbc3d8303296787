"""attempt hours: per-endpoint counts and latency histograms of completed hours

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "attempt_hours",
        sa.Column("endpoint_id", sa.String(length=40), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("succeeded", sa.Integer(), nullable=False),
        sa.Column("pings", sa.Integer(), nullable=False),
        sa.Column("pings_succeeded", sa.Integer(), nullable=False),
        sa.Column("latency", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["endpoints.id"],
            name=op.f("fk_attempt_hours_endpoint_id_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("endpoint_id", "hour", name=op.f("pk_attempt_hours")),
    )
    op.create_index(op.f("ix_attempt_hours_hour"), "attempt_hours", ["hour"])
    op.create_table(
        "rolled_up_hours",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rolled_up_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("hour", name=op.f("pk_rolled_up_hours")),
    )


def downgrade() -> None:
    op.drop_table("rolled_up_hours")
    op.drop_table("attempt_hours")
