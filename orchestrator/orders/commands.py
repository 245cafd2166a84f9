"""Commands and their results: what a channel asks for, already translated from its own format,
and what came of it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from orchestrator.customers.model import CustomerDetails
from orchestrator.order_record.states import Method
from orchestrator.platform.errors import InvalidRequest
from orchestrator.platform.geo import Coordinates


@dataclass(frozen=True, slots=True)
class NewLine:
    sku: str
    quantity: int
    unit_price: int


@dataclass(frozen=True, slots=True)
class NewPayment:
    """How the order is paid: ``stripe`` with a PaymentIntent the storefront confirmed or a
    payment method to authorise with; ``pos`` (in store, at pickup); ``marketplace`` (collected
    by the marketplace, under ``reference``)."""

    provider: str
    payment_intent: str | None = None
    payment_method: str | None = None
    reference: str | None = None

    def check(self, method: Method | None = None) -> None:
        """The payment names what its provider needs; ``method``: how the order is fulfilled
        (pay in store is paid at the counter when the goods are handed over: a parcel has none)."""
        if self.provider == "stripe" and (self.payment_intent is None) == (self.payment_method is None):
            raise InvalidRequest("a stripe payment names either payment_intent or payment_method", field="payment")
        if self.provider == "marketplace" and not self.reference:
            raise InvalidRequest("a marketplace payment names its reference", field="payment.reference")
        if self.provider == "pos" and method is Method.SHIP:
            raise InvalidRequest(
                "pay in store (pos) is for pickups; a shipment is paid by card or by the marketplace",
                field="payment.provider",
            )


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
    # A card payment is still to be authorised: the order waits (``pending_payment``), unseen by
    # any store, until it is (``orders/paid_intake.py``).
    awaiting_payment: bool = False


@dataclass(frozen=True, slots=True)
class Placed:
    """What placing an order came to: a new order, the order already placed under the same
    channel reference (``created`` false), or, for a repeated idempotency key, the first answer
    again (``replayed``; ``status_code`` is the first answer's, a problem's too, and then there is
    no ``order_id``). ``body`` is the order as answered (``OrderView`` encoded once: stored
    for replays, sent as it is)."""

    order_id: uuid.UUID | None
    version: int
    body: bytes
    created: bool
    replayed: bool = False
    status_code: int | None = None

    @property
    def status(self) -> int:
        return self.status_code or (201 if self.created else 200)
