"""payment records for refunds, tenders, disputes and authorisation expiry; Stripe webhook events
received (each applied once)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 16:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_KINDS = "kind IN ('authorise', 'capture', 'void', 'refund', 'fail', 'expire')"
_KINDS = "kind IN ('authorise', 'capture', 'void', 'refund', 'fail', 'expire', 'tender', 'dispute', 'expiring')"
_TENDER_METHODS = "tender_method IS NULL OR tender_method IN ('cash', 'card', 'other')"
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.drop_constraint("kind_known", "payment_operations", type_="check")
    op.create_check_constraint("kind_known", "payment_operations", _KINDS)
    # A tender at the counter: how it was paid, the terminal's or till's reference, change given.
    op.add_column("payment_operations", sa.Column("tender_method", sa.String(length=10), nullable=True))
    op.add_column("payment_operations", sa.Column("reference", sa.String(length=255), nullable=True))
    op.add_column("payment_operations", sa.Column("change_given", sa.BigInteger(), nullable=True))
    # Why: a refund's reason, a dispute's reason, an expiry's cause.
    op.add_column("payment_operations", sa.Column("reason", sa.String(length=255), nullable=True))
    op.create_check_constraint("tender_method_known", "payment_operations", _TENDER_METHODS)
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("object_id", sa.String(length=255), nullable=True),
        sa.Column("stripe_created", _TS, nullable=False),
        sa.Column("received_at", _TS, server_default=sa.func.now(), nullable=False),
        sa.Column("outcome", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_stripe_events_object", "stripe_events", ["object_id", "stripe_created"])


def downgrade() -> None:
    op.drop_index("ix_stripe_events_object", table_name="stripe_events")
    op.drop_table("stripe_events")
    op.drop_constraint("tender_method_known", "payment_operations", type_="check")
    for column in ("reason", "change_given", "reference", "tender_method"):
        op.drop_column("payment_operations", column)
    op.execute("DELETE FROM payment_operations WHERE kind IN ('tender', 'dispute', 'expiring')")
    op.drop_constraint("kind_known", "payment_operations", type_="check")
    op.create_check_constraint("kind_known", "payment_operations", _OLD_KINDS)
