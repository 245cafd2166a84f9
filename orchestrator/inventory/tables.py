"""Stock levels and the inventory ledger."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Column, Identity, Index
from sqlmodel import Field, SQLModel

from orchestrator.platform.columns import created_at, timestamp


class StockLevel(SQLModel, table=True):
    __tablename__ = "stock_levels"
    __table_args__ = (
        CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
        CheckConstraint("reserved >= 0 AND reserved <= on_hand", name="reserved_within_on_hand"),
        CheckConstraint("safety_stock >= 0", name="safety_stock_not_negative"),
        # Availability by sku across locations reads only this index.
        Index(
            "ix_stock_levels_product",
            "product_id",
            "location_id",
            postgresql_include=["on_hand", "reserved", "safety_stock"],
        ),
    )

    location_id: int = Field(foreign_key="locations.id", primary_key=True)
    product_id: int = Field(foreign_key="products.id", primary_key=True)
    on_hand: int = 0
    reserved: int = 0
    safety_stock: int = 0
    updated_at: datetime | None = timestamp()


class InventoryMovement(SQLModel, table=True):
    """The ledger: summing a (location, product)'s deltas gives its on_hand and reserved."""

    __tablename__ = "inventory_movements"
    __table_args__ = (Index("ix_inventory_movements_stock", "location_id", "product_id", "id"),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    location_id: int = Field(foreign_key="locations.id")
    product_id: int = Field(foreign_key="products.id")
    kind: str = Field(max_length=20)
    on_hand_delta: int = 0
    reserved_delta: int = 0
    reason: str | None = None
    actor: str | None = Field(default=None, max_length=120)
    reference: str | None = Field(default=None, max_length=120, index=True)
    created_at: datetime = created_at()
