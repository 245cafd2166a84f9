"""Customers: one row per person, whichever channels they order through, found by any identity."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import UUID
from sqlmodel import Field, SQLModel

from orchestrator.platform.columns import created_at, jsonb, timestamp


class Customer(SQLModel, table=True):
    __tablename__ = "customers"
    __table_args__ = (
        Index("uq_customers_email", "email", unique=True, postgresql_where=text("email IS NOT NULL")),
        Index("uq_customers_phone", "phone", unique=True, postgresql_where=text("phone IS NOT NULL")),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # The primary email and phone, each also an identity (``customer_identities``): what an order
    # view shows and what the first orders filled in. A merged-away customer holds neither.
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=20)
    name: str | None = Field(default=None, max_length=200)
    created_at: datetime = created_at()
    # Where notifications go (``customers/model.PreferredContact``); unset: the last-used channel.
    preferred_channel: str | None = Field(default=None, max_length=20)
    preferred_identity: str | None = Field(default=None, max_length=320)
    merged_into: uuid.UUID | None = Field(
        default=None, sa_column=Column(UUID(as_uuid=True), ForeignKey("customers.id"), nullable=True)
    )
    merged_at: datetime | None = timestamp()


class CustomerIdentity(SQLModel, table=True):
    """One way to recognise a customer: each (kind, value) belongs to exactly one customer."""

    __tablename__ = "customer_identities"
    __table_args__ = (Index("ix_customer_identities_customer", "customer_id"),)

    kind: str = Field(primary_key=True, max_length=20)  # email | phone | loyalty_id | account
    value: str = Field(primary_key=True, max_length=320)
    customer_id: uuid.UUID = Field(foreign_key="customers.id")
    created_at: datetime = created_at()


class MergeSuggestion(SQLModel, table=True):
    """Two customers one order showed to be one person (it carried identities of both), until an
    admin merges them (or the setting merges at once)."""

    __tablename__ = "customer_merge_suggestions"
    __table_args__ = (
        UniqueConstraint("first_id", "second_id", name="uq_customer_merge_suggestions_pair"),
        CheckConstraint("first_id < second_id", name="ck_customer_merge_suggestions_ordered"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # The pair in canonical order, so one pair has one suggestion whichever order revealed it.
    first_id: uuid.UUID = Field(foreign_key="customers.id", index=True)
    second_id: uuid.UUID = Field(foreign_key="customers.id", index=True)
    order_id: uuid.UUID | None = Field(default=None, foreign_key="orders.id")
    # [[kind, value], ...]: the identities of the other customer the order carried.
    identities: list = jsonb(default_factory=list)
    created_at: datetime = created_at()


class Interaction(SQLModel, table=True):
    """What was said on a channel (chat, phone, WhatsApp, a store visit), for the next agent."""

    __tablename__ = "customer_interactions"
    __table_args__ = (Index("ix_customer_interactions_customer_time", "customer_id", "created_at", "id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    customer_id: uuid.UUID = Field(foreign_key="customers.id")
    kind: str = Field(max_length=20)
    channel: str = Field(max_length=80)
    summary: str = Field(max_length=4000)
    order_id: uuid.UUID | None = Field(default=None, foreign_key="orders.id")
    agent: str | None = Field(default=None, max_length=120)
    recorded_by: str = Field(max_length=200)
    created_at: datetime = created_at()
