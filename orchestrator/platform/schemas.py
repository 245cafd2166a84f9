"""What every capability's request bodies share: the closed base, field types, the address and
line shapes, If-Match. Each capability keeps its own bodies in its ``schemas.py``, separate from
the tables and the read models; constraints there are the first line of validation (the domain
re-checks its own rules)."""

from __future__ import annotations

from typing import Annotated

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


def set_fields(patch: msgspec.Struct) -> dict:
    """The fields a PATCH body actually carried (UNSET ones left out)."""
    out = {}
    for name in patch.__struct_fields__:
        value = getattr(patch, name)
        if value is not msgspec.UNSET:
            out[name] = msgspec.to_builtins(value) if isinstance(value, msgspec.Struct) else value
    return out
