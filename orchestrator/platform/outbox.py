"""The transactional outbox: what leaves the process is written with the change that caused it."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Column, Identity, Index, text
from sqlmodel import Field, SQLModel

from orchestrator.platform.columns import created_at, jsonb, timestamp


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    # Stable across redeliveries: consumers deduplicate on it (delivery is at-least-once).
    event_id: uuid.UUID = Field(unique=True)
    type: str = Field(max_length=60)
    order_id: uuid.UUID | None = None
    # The event as published; what only the notification needs (a pickup code) is removed from
    # it by the statement that sets published_at (platform/outbox_relay.py).
    payload: dict = jsonb()
    created_at: datetime = created_at()
    claimed_until: datetime | None = timestamp()
    attempts: int = 0
    published_at: datetime | None = timestamp()
