"""a pickup store that cannot serve: the profile's ``on_pickup_shortfall`` (transfer | move |
ask_customer) with its ``ask_customer`` fallback and timeout replaces ``pickup_policy``; an order
waiting for the customer keeps its options and the time the fallback applies

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 19:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column(
        "sourcing_profiles",
        sa.Column("on_pickup_shortfall", sa.String(length=20), server_default="ask_customer", nullable=False),
    )
    # ``suggest`` listed stores nobody could choose: asking the customer is what it meant.
    op.execute(
        "UPDATE sourcing_profiles SET on_pickup_shortfall = "
        "CASE pickup_policy WHEN 'transfer' THEN 'transfer' ELSE 'ask_customer' END"
    )
    op.drop_column("sourcing_profiles", "pickup_policy")
    op.add_column(
        "sourcing_profiles",
        sa.Column("ask_customer_fallback", sa.String(length=20), server_default="transfer", nullable=False),
    )
    op.add_column(
        "sourcing_profiles",
        sa.Column("ask_customer_timeout_hours", sa.Integer(), server_default=sa.text("24"), nullable=False),
    )
    op.create_check_constraint(
        "ask_customer_timeout_positive", "sourcing_profiles", "ask_customer_timeout_hours > 0"
    )
    op.add_column("orders", sa.Column("action_options", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column("orders", sa.Column("action_deadline", _TS, nullable=True))
    op.create_index(
        "ix_orders_action_deadline", "orders", ["action_deadline"], postgresql_where=sa.text("action_deadline IS NOT NULL")
    )


def downgrade() -> None:
    op.drop_index("ix_orders_action_deadline", table_name="orders")
    op.drop_column("orders", "action_deadline")
    op.drop_column("orders", "action_options")
    op.drop_constraint("ask_customer_timeout_positive", "sourcing_profiles")
    op.drop_column("sourcing_profiles", "ask_customer_timeout_hours")
    op.drop_column("sourcing_profiles", "ask_customer_fallback")
    op.add_column(
        "sourcing_profiles",
        sa.Column("pickup_policy", sa.String(length=20), server_default="suggest", nullable=False),
    )
    op.execute(
        "UPDATE sourcing_profiles SET pickup_policy = "
        "CASE on_pickup_shortfall WHEN 'transfer' THEN 'transfer' ELSE 'suggest' END"
    )
    op.drop_column("sourcing_profiles", "on_pickup_shortfall")
