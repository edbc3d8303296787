"""receiver authentication: ed25519 signing keys, auth credentials, client certificates

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    "signing",
    "signing_key",
    "previous_signing_key",
    "previous_signing_key_expires_at",
    "auth",
    "client_certificate",
)


def upgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        batch.add_column(sa.Column("signing", sa.String(20), nullable=False, server_default="hmac"))
        batch.add_column(sa.Column("signing_key", sa.Text(), nullable=True))
        batch.add_column(sa.Column("previous_signing_key", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("previous_signing_key_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("auth", sa.Text(), nullable=True))
        batch.add_column(sa.Column("client_certificate", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        for name in _COLUMNS:
            batch.drop_column(name)
