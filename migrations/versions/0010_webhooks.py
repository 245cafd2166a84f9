"""outbound webhooks: subscriptions (signing secret, rotation overlap, health) and deliveries
(one per event and subscription, retried on a schedule); customer notifications; fulfillment
delays announced

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("event_types", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("owner_channel", sa.String(length=80), nullable=True),
        sa.Column("orders_channel", sa.String(length=80), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("previous_secret", sa.String(length=100), nullable=True),
        sa.Column("previous_secret_expires_at", ts, nullable=True),
        sa.Column("failing_since", ts, nullable=True),
        sa.Column("disabled_reason", sa.String(length=200), nullable=True),
        sa.Column("created_at", ts, server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", ts, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("template", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=12), nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("body", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("redacted", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("created_at", ts, server_default=sa.text("now()"), nullable=False),
        sa.Column("sent_at", ts, nullable=True),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"]),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id", name="uq_notifications_event"),
    )
    op.create_index("ix_notifications_order", "notifications", ["order_id", "created_at"])
    op.create_index("ix_notifications_customer", "notifications", ["customer_id", "created_at"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("subscription_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=60), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("redacted_payload", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("notification_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("due_since", ts, nullable=False),
        sa.Column("next_attempt_at", ts, nullable=True),
        sa.Column("claimed_until", ts, nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("last_duration_ms", sa.Integer(), nullable=True),
        sa.Column("attempt_log", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", ts, server_default=sa.text("now()"), nullable=False),
        sa.Column("delivered_at", ts, nullable=True),
        sa.ForeignKeyConstraint(["subscription_id"], ["webhook_subscriptions.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["notification_id"], ["notifications.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subscription_id", "event_id", name="uq_webhook_deliveries_event"),
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["subscription_id", "next_attempt_at"],
        postgresql_where=sa.text("status IN ('pending', 'failed')"),
    )
    op.create_index(
        "ix_webhook_deliveries_subscription", "webhook_deliveries", ["subscription_id", "created_at", "id"]
    )


    op.create_table(
        "fulfillment_delays",
        sa.Column("fulfillment_id", sa.Uuid(), nullable=False),
        sa.Column("expected_ready_at", ts, nullable=False),
        sa.Column("announced_at", ts, server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["fulfillment_id"], ["fulfillment_orders.id"]),
        sa.PrimaryKeyConstraint("fulfillment_id", "expected_ready_at"),
    )


def downgrade() -> None:
    op.drop_table("fulfillment_delays")
    op.drop_table("webhook_deliveries")
    op.drop_table("notifications")
    op.drop_table("webhook_subscriptions")
