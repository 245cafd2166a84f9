"""Locations and products."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Identity, text
from sqlmodel import Field, SQLModel

from orchestrator.platform.columns import created_at, jsonb, text_array, timestamp


class Location(SQLModel, table=True):
    __tablename__ = "locations"
    __table_args__ = (CheckConstraint("prep_minutes >= 0", name="prep_minutes_not_negative"),)

    id: int | None = Field(default=None, primary_key=True, sa_column_args=[Identity()])
    code: str = Field(unique=True, max_length=40)
    name: str = Field(max_length=200)
    kind: str = Field(default="store", max_length=20)
    address: dict = jsonb()
    lat: float | None = None
    lon: float | None = None
    timezone: str = Field(default="UTC", max_length=64)
    # {"mon": [["09:00", "20:00"]], ..., "sun": []} in the store's timezone; null: not known.
    opening_hours: dict | None = jsonb(default_factory=lambda: None, nullable=True)
    capabilities: list[str] = text_array()
    daily_capacity: int | None = None
    pickup_hold_days: int = 7
    # How long the store takes to have an order ready (expected ready times): minutes.
    prep_minutes: int = Field(default=120, sa_column_kwargs={"server_default": text("120")})
    active: bool = True
    created_at: datetime = created_at()
    updated_at: datetime | None = timestamp()


class Product(SQLModel, table=True):
    __tablename__ = "products"

    id: int | None = Field(default=None, primary_key=True, sa_column_args=[Identity()])
    sku: str = Field(unique=True, max_length=64)
    name: str = Field(max_length=300)
    gtin: str | None = Field(default=None, max_length=14, index=True)
    active: bool = True
    created_at: datetime = created_at()
    updated_at: datetime | None = timestamp()
