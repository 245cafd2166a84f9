"""Counter lookups: a store's staff found another store's order by its number and a verifier,
and may act on it (move the pickup to their store) until ``expires_at``."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from orchestrator.platform.columns import timestamp


class PickupLookupGrant(SQLModel, table=True):
    __tablename__ = "pickup_lookup_grants"
    __table_args__ = (Index("ix_pickup_lookup_grants_key_order", "api_key_id", "order_id", "expires_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    api_key_id: uuid.UUID = Field(foreign_key="api_keys.id")
    order_id: uuid.UUID = Field(foreign_key="orders.id")
    # The store whose staff looked it up (the key may serve several): where the pickup may move.
    location_code: str = Field(max_length=40)
    granted_at: datetime = timestamp(nullable=False)
    expires_at: datetime = timestamp(nullable=False)
