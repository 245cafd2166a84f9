"""Request bodies of the order endpoints."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from orchestrator.platform.schemas import AddressIn, Code, LineIn, Minor, Reason, RequestBody, Text200


class CustomerIn(RequestBody, kw_only=True):
    email: Annotated[str, Meta(max_length=320)] | None = None
    phone: Annotated[str, Meta(max_length=40)] | None = None
    name: Text200 | None = None
    # The store's loyalty card number; a channel account as ``<platform>:<id>`` (``shopify:123``).
    loyalty_id: Annotated[str, Meta(max_length=64)] | None = None
    account: Annotated[str, Meta(max_length=200)] | None = None


class FulfillmentIn(RequestBody, kw_only=True):
    method: Literal["pickup", "curbside", "ship"]
    location: Code | None = None
    address: AddressIn | None = None


class PaymentIn(RequestBody, kw_only=True, omit_defaults=True):
    """``stripe`` with ``payment_intent`` (confirmed by the storefront, manual capture) or
    ``payment_method`` (the service authorises it); ``pos`` (in store, at pickup); ``marketplace``
    with its ``reference`` (collected by the marketplace)."""

    provider: Literal["stripe", "pos", "marketplace"]
    payment_intent: Annotated[str, Meta(pattern=r"^pi_", max_length=255)] | None = None
    payment_method: Annotated[str, Meta(min_length=1, max_length=255)] | None = None
    reference: Annotated[str, Meta(min_length=1, max_length=255)] | None = None


class CreateOrder(RequestBody, kw_only=True):
    channel_order_ref: Annotated[str, Meta(min_length=1, max_length=200)]
    customer: CustomerIn
    lines: Annotated[list[LineIn], Meta(min_length=1, max_length=200)]
    currency: Annotated[str, Meta(pattern=r"^[A-Za-z]{3}$", description="ISO 4217")]
    fulfillment: FulfillmentIn
    channel: Annotated[str, Meta(min_length=1, max_length=80)] | None = msgspec.field(default=None)
    # Minor units of ``currency``; the order's total is subtotal + shipping + tax - discount, and
    # the discount may not exceed what it is taken off (422).
    shipping_total: Minor = 0
    tax_total: Minor = 0
    discount_total: Minor = 0
    payment: PaymentIn | None = None


class CancelOrder(RequestBody, kw_only=True):
    """Cancels all that is still open; it names no lines (an unknown field such as ``lines`` is
    422, never a cancel of everything)."""

    reason: Reason = "cancelled on request"
