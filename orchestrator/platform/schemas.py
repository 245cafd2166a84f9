"""Request bodies. Separate from the tables and from the read models; constraints here are the
first line of validation (the domain re-checks its own rules)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar.params import HeaderParameter
from msgspec import Meta

from orchestrator.platform.money import MAX_AMOUNT

Sku = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^\S+$", description="stock keeping unit")]
Code = Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.:-]+$")]
Quantity = Annotated[int, Meta(gt=0, le=100_000)]
Minor = Annotated[int, Meta(ge=0, le=MAX_AMOUNT, description="money in minor units (cents)")]
Lat = Annotated[float, Meta(ge=-90, le=90)]
Lon = Annotated[float, Meta(ge=-180, le=180)]
Reason = Annotated[str, Meta(min_length=1, max_length=500)]
Text200 = Annotated[str, Meta(max_length=200)]
# What ``dependencies.parse_if_match`` accepts (``"3"``, ``W/"3"`` or ``3``); documented in the
# OpenAPI document only, so that a bad value stays the ``invalid-request`` problem naming If-Match.
IF_MATCH_PATTERN = r'^(W/)?"?[0-9]{1,18}"?$'


def if_match_header(description: str) -> HeaderParameter:
    """The optional ``If-Match`` header parameter, documented with ``IF_MATCH_PATTERN``."""
    return HeaderParameter(
        name="If-Match", required=False, description=description, schema_extra={"pattern": IF_MATCH_PATTERN}
    )


class RequestBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of every request body of the service's own: a field it does not know is a 422 naming
    it, never silently dropped (``cancel`` with ``lines`` must not cancel the whole order)."""


class CustomerIn(RequestBody, kw_only=True):
    email: Annotated[str, Meta(max_length=320)] | None = None
    phone: Annotated[str, Meta(max_length=40)] | None = None
    name: Text200 | None = None


class LineIn(RequestBody, kw_only=True):
    sku: Sku
    quantity: Quantity
    unit_price: Minor


class AddressIn(RequestBody, kw_only=True, omit_defaults=True):
    name: Text200 | None = None
    line1: Text200 | None = None
    line2: Text200 | None = None
    city: Text200 | None = None
    region: Text200 | None = None
    postal_code: Annotated[str, Meta(max_length=20)] | None = None
    country: Annotated[str, Meta(min_length=2, max_length=2)] | None = None
    lat: Lat | None = None
    lon: Lon | None = None


class FulfillmentIn(RequestBody, kw_only=True):
    method: Literal["pickup", "curbside", "ship"]
    location: Code | None = None
    address: AddressIn | None = None


class CreateOrder(RequestBody, kw_only=True):
    channel_order_ref: Annotated[str, Meta(min_length=1, max_length=200)]
    customer: CustomerIn
    lines: Annotated[list[LineIn], Meta(min_length=1, max_length=200)]
    currency: Annotated[str, Meta(pattern=r"^[A-Za-z]{3}$", description="ISO 4217")]
    fulfillment: FulfillmentIn
    channel: Annotated[str, Meta(min_length=1, max_length=80)] | None = msgspec.field(default=None)


class CancelOrder(RequestBody, kw_only=True):
    reason: Reason = "cancelled on request"


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


class StockSet(RequestBody, kw_only=True):
    on_hand: Annotated[int, Meta(ge=0, le=10**9)]
    reason: Reason = "count"
    safety_stock: Annotated[int, Meta(ge=0, le=10**9)] | None = None


class StockAdjust(RequestBody, kw_only=True):
    delta: Annotated[int, Meta(ge=-(10**9), le=10**9)]
    reason: Reason
    kind: Literal["adjustment", "receipt"] = "adjustment"
    reference: Annotated[str, Meta(max_length=120)] | None = None


def set_fields(patch: msgspec.Struct) -> dict:
    """The fields a PATCH body actually carried (UNSET ones left out)."""
    out = {}
    for name in patch.__struct_fields__:
        value = getattr(patch, name)
        if value is not msgspec.UNSET:
            out[name] = msgspec.to_builtins(value) if isinstance(value, msgspec.Struct) else value
    return out
