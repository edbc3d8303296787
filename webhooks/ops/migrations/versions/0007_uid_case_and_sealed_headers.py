"""tenants: uids unique regardless of case; endpoints: credential-like custom headers sealed

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-01 21:30:00
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from webhooks.core import crypto

revision: str = "0007"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Fails on a database that already holds "acme" and "ACME": rename one first.
    op.create_index("ix_tenants_uid_lower", "tenants", [sa.text("lower(uid)")], unique=True)
    _rewrite_headers(crypto.seal_headers)


def downgrade() -> None:
    _rewrite_headers(crypto.open_headers)
    op.drop_index("ix_tenants_uid_lower", table_name="tenants")


def _rewrite_headers(rewrite: crypto.HeaderRewrite) -> None:
    """Encrypt (or decrypt) the credential-like custom headers of every endpoint in place."""
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, headers FROM endpoints")).all()
    for endpoint_id, stored in rows:
        headers = json.loads(stored) if isinstance(stored, str) else stored
        if not headers:
            continue
        # Opening first makes the rewrite idempotent: sealed values are not sealed twice.
        new = rewrite(crypto.open_headers(headers))
        if new != headers:
            connection.execute(
                sa.text("UPDATE endpoints SET headers = :headers WHERE id = :id"),
                {"headers": json.dumps(new), "id": endpoint_id},
            )
