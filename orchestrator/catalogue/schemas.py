"""Request bodies of the location and product endpoints."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from orchestrator.platform.schemas import AddressIn, Code, Lat, Lon, RequestBody, Sku

# How long the location takes to have an order ready, in minutes (up to 30 days).
PrepMinutes = Annotated[int, Meta(ge=0, le=43_200)]

# A time of day on the store's clock; "24:00" closes at midnight.
TimeOfDay = Annotated[str, Meta(pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$", examples=["09:00"])]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
# Per weekday, the [open, close] intervals in the store's timezone; an empty list: closed that day.
OpeningHours = dict[Weekday, list[tuple[TimeOfDay, TimeOfDay]]]


class LocationIn(RequestBody, kw_only=True):
    code: Code
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    kind: Literal["store", "warehouse"] = "store"
    address: AddressIn | None = None
    lat: Lat | None = None
    lon: Lon | None = None
    timezone: Annotated[str, Meta(max_length=64)] = "UTC"
    capabilities: list[Literal["pickup", "curbside", "ship"]] = msgspec.field(default_factory=list)
    daily_capacity: Annotated[int, Meta(ge=0, le=1_000_000)] | None = None
    pickup_hold_days: Annotated[int, Meta(ge=1, le=90)] = 7
    prep_minutes: PrepMinutes = 120
    opening_hours: OpeningHours | None = None
    active: bool = True


class LocationPatch(RequestBody, kw_only=True, omit_defaults=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)] | msgspec.UnsetType = msgspec.UNSET
    kind: Literal["store", "warehouse"] | msgspec.UnsetType = msgspec.UNSET
    address: AddressIn | msgspec.UnsetType = msgspec.UNSET
    lat: Lat | None | msgspec.UnsetType = msgspec.UNSET
    lon: Lon | None | msgspec.UnsetType = msgspec.UNSET
    timezone: Annotated[str, Meta(max_length=64)] | msgspec.UnsetType = msgspec.UNSET
    capabilities: list[Literal["pickup", "curbside", "ship"]] | msgspec.UnsetType = msgspec.UNSET
    daily_capacity: Annotated[int, Meta(ge=0, le=1_000_000)] | None | msgspec.UnsetType = msgspec.UNSET
    pickup_hold_days: Annotated[int, Meta(ge=1, le=90)] | msgspec.UnsetType = msgspec.UNSET
    prep_minutes: PrepMinutes | msgspec.UnsetType = msgspec.UNSET
    opening_hours: OpeningHours | None | msgspec.UnsetType = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET


class ProductIn(RequestBody, kw_only=True):
    sku: Sku
    name: Annotated[str, Meta(min_length=1, max_length=300)]
    gtin: Annotated[str, Meta(pattern=r"^\d{8,14}$")] | None = None
    active: bool = True


class ProductPatch(RequestBody, kw_only=True, omit_defaults=True):
    name: Annotated[str, Meta(min_length=1, max_length=300)] | msgspec.UnsetType = msgspec.UNSET
    gtin: Annotated[str, Meta(pattern=r"^\d{8,14}$")] | None | msgspec.UnsetType = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET
