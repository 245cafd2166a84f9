"""derived pickup codes: the code is recomputed from the pickup's id and issue, never stored

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 11:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "fulfillment_orders",
        sa.Column("pickup_code_issue", sa.Integer(), server_default="0", nullable=False),
    )
    # A pickup that was ready before keeps working: it gets its first derived code (the old
    # digest cannot be turned back into the code the customer holds; staff hand over with an
    # override or the channel re-sends the new code).
    op.execute("UPDATE fulfillment_orders SET pickup_code_issue = 1 WHERE pickup_code_digest IS NOT NULL")
    op.alter_column("fulfillment_orders", "pickup_code_issue", server_default=None)
    op.drop_index(
        "uq_fulfillment_orders_open_pickup_code",
        table_name="fulfillment_orders",
        postgresql_where=sa.text("status = 'ready_for_pickup'"),
    )
    op.drop_column("fulfillment_orders", "pickup_code_digest")


def downgrade() -> None:
    op.add_column("fulfillment_orders", sa.Column("pickup_code_digest", sa.String(length=64), nullable=True))
    op.create_index(
        "uq_fulfillment_orders_open_pickup_code",
        "fulfillment_orders",
        ["location_id", "pickup_code_digest"],
        unique=True,
        postgresql_where=sa.text("status = 'ready_for_pickup'"),
    )
    op.drop_column("fulfillment_orders", "pickup_code_issue")
