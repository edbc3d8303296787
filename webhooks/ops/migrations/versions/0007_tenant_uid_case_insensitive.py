"""tenants: uids are unique regardless of case

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-01 21:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Fails on a database that already holds "acme" and "ACME": rename one first.
    op.create_index("ix_tenants_uid_lower", "tenants", [sa.text("lower(uid)")], unique=True)


def downgrade() -> None:
    op.drop_index("ix_tenants_uid_lower", table_name="tenants")
