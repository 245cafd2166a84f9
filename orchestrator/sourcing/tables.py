"""Sourcing profiles (per channel, versioned) and the decisions made with them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Index, text
from sqlmodel import Field, SQLModel

from orchestrator.platform.columns import created_at, jsonb


class SourcingProfileVersion(SQLModel, table=True):
    __tablename__ = "sourcing_profiles"
    __table_args__ = (
        CheckConstraint("transfer_hours >= 0", name="transfer_hours_not_negative"),
        CheckConstraint("ask_customer_timeout_hours > 0", name="ask_customer_timeout_positive"),
    )

    channel: str = Field(primary_key=True, max_length=80)
    version: int = Field(primary_key=True)
    # What happens when the pickup store cannot serve it all: transfer | move | ask_customer.
    on_pickup_shortfall: str = Field(
        default="ask_customer", max_length=20, sa_column_kwargs={"server_default": "ask_customer"}
    )
    ask_customer_fallback: str = Field(
        default="transfer", max_length=20, sa_column_kwargs={"server_default": "transfer"}
    )
    ask_customer_timeout_hours: int = Field(default=24, sa_column_kwargs={"server_default": text("24")})
    min_split_line_value: int = Field(default=0, sa_type=BigInteger)
    suggestion_limit: int = 5
    # How long units take to travel between stores (expected ready time of a transfer-fed pickup).
    transfer_hours: int = Field(default=24, sa_column_kwargs={"server_default": text("24")})
    created_by: str | None = Field(default=None, max_length=120)
    created_at: datetime = created_at()


class SourcingDecision(SQLModel, table=True):
    __tablename__ = "sourcing_decisions"
    __table_args__ = (Index("ix_sourcing_decisions_order", "order_id", "created_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    order_id: uuid.UUID = Field(foreign_key="orders.id")
    trigger: str = Field(max_length=40)
    rule: str = Field(max_length=60)
    profile_channel: str = Field(max_length=80)
    profile_version: int
    request: dict = jsonb()
    candidates: list = jsonb(default_factory=list)
    plan: list = jsonb(default_factory=list)
    unfilled: dict = jsonb()
    created_at: datetime = created_at()
