"""Customers: one row per person, whichever channels they order through."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from orchestrator.platform.columns import created_at


class Customer(SQLModel, table=True):
    __tablename__ = "customers"
    __table_args__ = (
        Index("uq_customers_email", "email", unique=True, postgresql_where=text("email IS NOT NULL")),
        Index("uq_customers_phone", "phone", unique=True, postgresql_where=text("phone IS NOT NULL")),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=20)
    name: str | None = Field(default=None, max_length=200)
    created_at: datetime = created_at()
