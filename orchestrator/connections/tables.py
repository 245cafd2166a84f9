"""Connectors and every delivery they received, raw, with its outcome."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Column, DateTime, ForeignKey, Index, LargeBinary, text
from sqlalchemy.dialects.postgresql import UUID
from sqlmodel import Field, SQLModel

from orchestrator.platform.columns import created_at, jsonb, timestamp


class Connector(SQLModel, table=True):
    __tablename__ = "connectors"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    kind: str = Field(max_length=12)  # shopify | amazon | walmart | square
    name: str = Field(max_length=200, unique=True)
    channel: str = Field(max_length=80)
    # Write-only (``connections/model.py``): never in a view, a log line or a receipt.
    credentials: dict = jsonb()
    location_map: dict = jsonb()  # platform location id or name → location code
    sku_map: dict = jsonb()  # platform sku → our sku
    settings: dict = jsonb()
    # A poller's place (Amazon: {"last_updated_after": ...}), moved only by a poll that finished.
    cursor: dict = jsonb()
    last_polled_at: datetime | None = timestamp()
    last_poll_error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = created_at()
    updated_at: datetime | None = timestamp()


class ConnectorReceipt(SQLModel, table=True):
    """One delivery as received (headers without the signature, body byte for byte) and what it
    came to. A repeated delivery is a receipt of its own, ``duplicate_of`` the first."""

    __tablename__ = "connector_receipts"
    __table_args__ = (
        # One first delivery per platform event: the repeats are the ones naming a duplicate_of.
        Index(
            "uq_connector_receipts_event",
            "connector_id",
            "dedupe_key",
            unique=True,
            postgresql_where=text("duplicate_of IS NULL"),
        ),
        Index("ix_connector_receipts_list", "connector_id", "received_at", "id"),
        Index("ix_connector_receipts_pending", "received_at", postgresql_where=text("outcome = 'pending'")),
        Index("ix_connector_receipts_resource", "connector_id", "resource_id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    connector_id: uuid.UUID = Field(
        sa_column=Column(UUID(as_uuid=True), ForeignKey("connectors.id", ondelete="CASCADE"), nullable=False)
    )
    topic: str = Field(max_length=100)
    dedupe_key: str = Field(max_length=200)
    duplicate_of: uuid.UUID | None = None
    headers: dict = jsonb()
    body: bytes = Field(sa_type=LargeBinary, nullable=False)
    outcome: str = Field(max_length=12)  # connections/model.Outcome
    detail: str | None = Field(default=None, max_length=1000)
    unmapped: list = jsonb(default_factory=list)  # ["sku:X", "location:Y"]
    # The platform's object (a Shopify order id) and its version (``updated_at``), for staleness.
    resource_id: str | None = Field(default=None, max_length=80)
    resource_updated_at: datetime | None = timestamp()
    order_id: uuid.UUID | None = None
    attempts: int = 0
    received_at: datetime = Field(sa_type=DateTime(timezone=True), nullable=False)
    processed_at: datetime | None = timestamp()
