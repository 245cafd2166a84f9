"""connector polling: a poller's cursor, when it last polled and what its last poll came to

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 23:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    jsonb = postgresql.JSONB(astext_type=sa.Text())
    # The default fills the rows already there; the model writes the column itself.
    op.add_column("connectors", sa.Column("cursor", jsonb, nullable=False, server_default=sa.text("'{}'::jsonb")))
    op.alter_column("connectors", "cursor", server_default=None)
    op.add_column("connectors", sa.Column("last_polled_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("connectors", sa.Column("last_poll_error", sa.String(length=1000), nullable=True))


def downgrade() -> None:
    op.drop_column("connectors", "last_poll_error")
    op.drop_column("connectors", "last_polled_at")
    op.drop_column("connectors", "cursor")
