"""Commands: what a channel asks for, already translated from its own format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.fulfillment.model import Method
from orchestrator.platform.geo import Coordinates


@dataclass(frozen=True, slots=True)
class CustomerDetails:
    email: str | None = None
    phone: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class NewLine:
    sku: str
    quantity: int
    unit_price: int


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    channel: str
    channel_order_ref: str
    customer: CustomerDetails
    lines: tuple[NewLine, ...]
    currency: str
    method: Method
    location: str | None = None
    address: dict[str, Any] | None = None
    destination: Coordinates | None = None


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """A request that carried an ``Idempotency-Key``: the key is per principal."""

    principal: str
    key: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Placement:
    """The answer to a PlaceOrder: 201 new, 200 an existing order, or a stored replay."""

    status_code: int
    body: bytes
    replayed: bool = False
    order_id: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
