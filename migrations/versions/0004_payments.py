"""payments: an order's payment and its operations; a payment-failed order lets go of its
channel reference

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 15:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PROVIDERS = "provider IN ('stripe', 'pos', 'marketplace')"
_STATUSES = (
    "status IN ('pending', 'authorised', 'partially_captured', 'captured', 'partially_refunded', "
    "'refunded', 'voided', 'failed')"
)
_KINDS = "kind IN ('authorise', 'capture', 'void', 'refund', 'fail', 'expire')"
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Every existing order holds its reference, as before.
    op.add_column(
        "orders", sa.Column("holds_channel_ref", sa.Boolean(), server_default=sa.text("true"), nullable=False)
    )
    op.drop_constraint("uq_orders_channel_ref", "orders", type_="unique")
    op.create_index(
        "uq_orders_channel_ref",
        "orders",
        ["channel", "channel_order_ref"],
        unique=True,
        postgresql_where=sa.text("holds_channel_ref"),
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_authorised", sa.BigInteger(), nullable=False),
        sa.Column("amount_captured", sa.BigInteger(), nullable=False),
        sa.Column("amount_refunded", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("capture_before", _TS, nullable=True),
        sa.Column("multicapture", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", _TS, server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", _TS, nullable=True),
        sa.CheckConstraint(_PROVIDERS, name="provider_known"),
        sa.CheckConstraint(_STATUSES, name="status_known"),
        sa.CheckConstraint(
            "amount_authorised >= 0 AND amount_captured >= 0 AND amount_refunded >= 0 "
            "AND amount_captured <= amount_authorised AND amount_refunded <= amount_captured",
            name="money_within_authorisation",
        ),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_payments_order", "payments", ["order_id"])
    op.create_index(
        "uq_payments_external",
        "payments",
        ["provider", "external_id"],
        unique=True,
        postgresql_where=sa.text("external_id IS NOT NULL AND status <> 'failed'"),
    )
    op.create_table(
        "payment_operations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("payment_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("error_code", sa.String(length=80), nullable=True),
        sa.Column("decline_code", sa.String(length=80), nullable=True),
        sa.Column("fulfillment_id", sa.Uuid(), nullable=True),
        sa.Column("occurred_at", _TS, server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(_KINDS, name="kind_known"),
        sa.CheckConstraint("amount >= 0", name="amount_not_negative"),
        sa.ForeignKeyConstraint(["payment_id"], ["payments.id"]),
        sa.ForeignKeyConstraint(["fulfillment_id"], ["fulfillment_orders.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index("ix_payment_operations_payment", "payment_operations", ["payment_id", "occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_payment_operations_payment", table_name="payment_operations")
    op.drop_table("payment_operations")
    op.drop_index("uq_payments_external", table_name="payments")
    op.drop_index("ix_payments_order", table_name="payments")
    op.drop_table("payments")
    op.drop_index("uq_orders_channel_ref", table_name="orders")
    op.create_unique_constraint("uq_orders_channel_ref", "orders", ["channel", "channel_order_ref"])
    op.drop_column("orders", "holds_channel_ref")
