"""one customer, scoped keys: customer identities (email, phone, loyalty id, channel accounts),
merges and their suggestions, interactions; key scopes, rotation and last use

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 22:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# platform/scopes.py's defaults, as they were when this revision was written.
_MARKETPLACE = "split_part(lower(channel), ':', 1) IN ('marketplace','amazon','walmart','shopify','ebay','etsy','zalando','target')"
_SCOPES = f"""
UPDATE api_keys SET scopes = CASE
  WHEN role = 'admin' THEN ARRAY['orders:read','orders:write','orders:read:all-channels','customers:read',
                                 'customers:write','fulfillment','inventory:write','admin']
  WHEN role = 'staff' THEN ARRAY['orders:read','orders:write','fulfillment','inventory:write']
  WHEN {_MARKETPLACE} THEN ARRAY['orders:read','orders:write']
  ELSE ARRAY['orders:read','orders:write','orders:read:all-channels','customers:read','customers:write']
END
"""


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.add_column("api_keys", sa.Column("scopes", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False))
    op.execute(_SCOPES)
    op.alter_column("api_keys", "scopes", server_default=None)
    op.add_column("api_keys", sa.Column("previous_digest", sa.String(length=64), nullable=True))
    op.add_column("api_keys", sa.Column("previous_expires_at", ts, nullable=True))
    op.add_column("api_keys", sa.Column("rotated_at", ts, nullable=True))
    op.add_column("api_keys", sa.Column("last_used_at", ts, nullable=True))
    op.create_unique_constraint("api_keys_previous_digest_key", "api_keys", ["previous_digest"])

    op.add_column("customers", sa.Column("preferred_channel", sa.String(length=20), nullable=True))
    op.add_column("customers", sa.Column("preferred_identity", sa.String(length=320), nullable=True))
    op.add_column("customers", sa.Column("merged_into", sa.Uuid(), nullable=True))
    op.add_column("customers", sa.Column("merged_at", ts, nullable=True))
    op.create_foreign_key("customers_merged_into_fkey", "customers", "customers", ["merged_into"], ["id"])

    op.create_table(
        "customer_identities",
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", ts, server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"]),
        sa.PrimaryKeyConstraint("kind", "value"),
    )
    op.create_index("ix_customer_identities_customer", "customer_identities", ["customer_id"])
    op.execute(
        "INSERT INTO customer_identities (kind, value, customer_id, created_at) "
        "SELECT 'email', email, id, created_at FROM customers WHERE email IS NOT NULL "
        "UNION ALL SELECT 'phone', phone, id, created_at FROM customers WHERE phone IS NOT NULL"
    )

    op.create_table(
        "customer_merge_suggestions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("first_id", sa.Uuid(), nullable=False),
        sa.Column("second_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        sa.Column("identities", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", ts, server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("first_id < second_id", name="ck_customer_merge_suggestions_ordered"),
        sa.ForeignKeyConstraint(["first_id"], ["customers.id"]),
        sa.ForeignKeyConstraint(["second_id"], ["customers.id"]),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("first_id", "second_id", name="uq_customer_merge_suggestions_pair"),
    )
    op.create_index("ix_customer_merge_suggestions_first_id", "customer_merge_suggestions", ["first_id"])
    op.create_index("ix_customer_merge_suggestions_second_id", "customer_merge_suggestions", ["second_id"])

    op.create_table(
        "customer_interactions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("channel", sa.String(length=80), nullable=False),
        sa.Column("summary", sa.String(length=4000), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        sa.Column("agent", sa.String(length=120), nullable=True),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", ts, server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"]),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_customer_interactions_customer_time", "customer_interactions", ["customer_id", "created_at", "id"]
    )


def downgrade() -> None:
    op.drop_table("customer_interactions")
    op.drop_table("customer_merge_suggestions")
    op.drop_table("customer_identities")
    op.drop_constraint("customers_merged_into_fkey", "customers", type_="foreignkey")
    for column in ("merged_at", "merged_into", "preferred_identity", "preferred_channel"):
        op.drop_column("customers", column)
    op.drop_constraint("api_keys_previous_digest_key", "api_keys", type_="unique")
    for column in ("last_used_at", "rotated_at", "previous_expires_at", "previous_digest", "scopes"):
        op.drop_column("api_keys", column)
