"""Commands and their results: what a channel asks for, already translated from its own format,
and what came of it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from orchestrator.customers.model import CustomerDetails
from orchestrator.order_record.states import Method
from orchestrator.platform.geo import Coordinates


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
    # Minor units of ``currency``, added to the goods (shipping, tax) or taken off them (discount).
    shipping_total: int = 0
    tax_total: int = 0
    discount_total: int = 0


@dataclass(frozen=True, slots=True)
class Placed:
    """What placing an order came to: a new order, the order already placed under the same
    channel reference (``created`` false), or, for a repeated idempotency key, the first answer
    again (``replayed``). ``body`` is the order as answered (``OrderView`` encoded once: stored
    for replays, sent as it is)."""

    order_id: uuid.UUID
    version: int
    body: bytes
    created: bool
    replayed: bool = False
