"""order totals: shipping, tax and discount beside the subtotal (the total is derived from them)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 14:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TOTALS = ("shipping_total", "tax_total", "discount_total")


def upgrade() -> None:
    # Existing orders had nothing added or taken off: 0, and their total is their subtotal.
    for name in _TOTALS:
        op.add_column("orders", sa.Column(name, sa.BigInteger(), server_default=sa.text("0"), nullable=False))
    op.create_check_constraint(
        "totals_within_order",
        "orders",
        "shipping_total >= 0 AND tax_total >= 0 AND discount_total >= 0 "
        "AND discount_total <= subtotal + shipping_total + tax_total",
    )


def downgrade() -> None:
    op.drop_constraint("totals_within_order", "orders", type_="check")
    for name in reversed(_TOTALS):
        op.drop_column("orders", name)
