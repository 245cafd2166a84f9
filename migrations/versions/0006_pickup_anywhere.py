"""order changes and pick up anywhere: each location's preparation time and each fulfillment's
expected ready time, the record of every applied order change, and the counter lookups that let a
store's staff act on another store's order for a while

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 17:25:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("locations", sa.Column("prep_minutes", sa.Integer(), server_default=sa.text("120"), nullable=False))
    op.create_check_constraint("prep_minutes_not_negative", "locations", "prep_minutes >= 0")
    op.add_column("fulfillment_orders", sa.Column("expected_ready_at", _TS, nullable=True))
    op.add_column(
        "sourcing_profiles", sa.Column("transfer_hours", sa.Integer(), server_default=sa.text("24"), nullable=False)
    )
    op.create_check_constraint("transfer_hours_not_negative", "sourcing_profiles", "transfer_hours >= 0")
    op.create_table(
        "order_changes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("actor_kind", sa.String(length=20), nullable=False),
        sa.Column("actor_id", sa.String(length=120), nullable=True),
        sa.Column("channel", sa.String(length=80), nullable=True),
        sa.Column("actions", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("before", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("after", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("decisions", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("version_before", sa.Integer(), nullable=False),
        sa.Column("version_after", sa.Integer(), nullable=False),
        sa.Column("created_at", _TS, server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_order_changes_order", "order_changes", ["order_id", "created_at"])
    op.create_table(
        "pickup_lookup_grants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("api_key_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("location_code", sa.String(length=40), nullable=False),
        sa.Column("granted_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["api_key_id"], ["api_keys.id"]),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_pickup_lookup_grants_key_order", "pickup_lookup_grants", ["api_key_id", "order_id", "expires_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_pickup_lookup_grants_key_order", table_name="pickup_lookup_grants")
    op.drop_table("pickup_lookup_grants")
    op.drop_index("ix_order_changes_order", table_name="order_changes")
    op.drop_table("order_changes")
    op.drop_column("fulfillment_orders", "expected_ready_at")
    op.drop_constraint("transfer_hours_not_negative", "sourcing_profiles", type_="check")
    op.drop_column("sourcing_profiles", "transfer_hours")
    op.drop_constraint("prep_minutes_not_negative", "locations", type_="check")
    op.drop_column("locations", "prep_minutes")
