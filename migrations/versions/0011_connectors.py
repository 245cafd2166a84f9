"""channel connectors: the registry (kind, channel, write-only credentials, location and sku maps,
settings) and every delivery received, raw, with its outcome

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 23:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    jsonb = postgresql.JSONB(astext_type=sa.Text())
    op.create_table(
        "connectors",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=80), nullable=False),
        sa.Column("credentials", jsonb, nullable=False),
        sa.Column("location_map", jsonb, nullable=False),
        sa.Column("sku_map", jsonb, nullable=False),
        sa.Column("settings", jsonb, nullable=False),
        sa.Column("created_at", ts, server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", ts, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "connector_receipts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("connector_id", sa.Uuid(), nullable=False),
        sa.Column("topic", sa.String(length=100), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("duplicate_of", sa.Uuid(), nullable=True),
        sa.Column("headers", jsonb, nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("outcome", sa.String(length=12), nullable=False),
        sa.Column("detail", sa.String(length=1000), nullable=True),
        sa.Column("unmapped", jsonb, nullable=False),
        sa.Column("resource_id", sa.String(length=80), nullable=True),
        sa.Column("resource_updated_at", ts, nullable=True),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("received_at", ts, nullable=False),
        sa.Column("processed_at", ts, nullable=True),
        sa.ForeignKeyConstraint(["connector_id"], ["connectors.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "uq_connector_receipts_event",
        "connector_receipts",
        ["connector_id", "dedupe_key"],
        unique=True,
        postgresql_where=sa.text("duplicate_of IS NULL"),
    )
    op.create_index("ix_connector_receipts_list", "connector_receipts", ["connector_id", "received_at", "id"])
    op.create_index(
        "ix_connector_receipts_pending",
        "connector_receipts",
        ["received_at"],
        postgresql_where=sa.text("outcome = 'pending'"),
    )
    op.create_index("ix_connector_receipts_resource", "connector_receipts", ["connector_id", "resource_id"])


def downgrade() -> None:
    op.drop_table("connector_receipts")
    op.drop_table("connectors")
