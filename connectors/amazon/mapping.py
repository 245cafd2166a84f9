"""An SP-API order (Orders API v0: a ``getOrders`` order and its ``getOrderItems`` items) → the
canonical ``PlaceOrder`` with a marketplace-collected payment. Pure: no I/O and no business rule;
it only translates, or says why it cannot.

A receipt's body is ``{"Order": <getOrders order>, "OrderItems": [<getOrderItems items>]}``.

- ``read_head`` reads what decides what to do with an order (id, ``LastUpdateDate``,
  ``OrderStatus``, ``FulfillmentChannel``, a buyer-requested cancel); ``map_order`` gives a
  ``MappedOrder``, or ``Unmapped`` naming every sku and location the maps lack, or raises
  ``MappingError``. Nothing else escapes.
- Money: ``ItemPrice`` is the line's total (Amazon: the item's price times ``QuantityOrdered``),
  a decimal string in ``CurrencyCode``; the unit price is that total over the quantity in minor
  units (by the currency's ISO 4217 exponent). A total the quantity does not divide is rounded up
  per unit and the rounding given back as discount, so the order's total is Amazon's to the unit.
  ``ShippingPrice`` sums to shipping; ``ItemTax`` and ``ShippingTax`` to tax (Amazon's prices
  exclude the tax it lists); ``PromotionDiscount`` and ``ShippingDiscount`` to discount.
- The customer: ``BuyerInfo.BuyerEmail`` (Amazon's anonymised relay address, stable per buyer
  and seller) is the email and the account identity ``amazon:<BuyerEmail>``: the Orders API
  carries no other buyer id. ``BuyerInfo.BuyerName`` or ``ShippingAddress.Name`` is the name.
- ``IsISPU`` (in-store pickup) orders are pickups at the location the map gives for an item's
  ``StoreChainStoreId``, else for ``DefaultShipFromLocationAddress.Name``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from connectors.maps import MappingError, Maps, read_text, read_time
from orchestrator.customers.model import CustomerDetails
from orchestrator.order_record.states import Method
from orchestrator.orders.commands import NewLine, NewPayment, PlaceOrder
from orchestrator.platform.money import ISO_4217, MAX_AMOUNT, minor_unit_exponent

__all__ = ["Head", "MappedOrder", "MappingError", "Maps", "Unmapped", "map_order", "read_head"]

_DECIMAL = re.compile(r"^-?\d{1,15}(\.\d{1,12})?$")
_ORDER_ID = re.compile(r"^[0-9A-Za-z_-]{1,80}$")
MAX_LINES = 500


@dataclass(frozen=True, slots=True)
class Head:
    order_ref: str
    updated_at: datetime
    status: str
    fulfillment_channel: str | None
    cancel_requested: str | None  # the buyer's reason ("" when none given); None: no request


@dataclass(frozen=True, slots=True)
class MappedOrder:
    command: PlaceOrder
    payment: NewPayment
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Unmapped:
    """What the maps lack: ``sku:<SellerSKU>``, ``location:<StoreChainStoreId or name>``."""

    order_ref: str
    missing: tuple[str, ...]


def order_of(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("Order"), dict):
        raise MappingError("the receipt holds no Order object")
    return body["Order"]


def items_of(body: Any) -> list[Any]:
    items = body.get("OrderItems") if isinstance(body, dict) else None
    if items is None:
        return []
    if not isinstance(items, list):
        raise MappingError("OrderItems is not a list")
    return items


def read_head(body: Any) -> Head:
    order = order_of(body)
    ref = order.get("AmazonOrderId")
    if not isinstance(ref, str) or not _ORDER_ID.fullmatch(ref):
        raise MappingError("AmazonOrderId is missing or not an order id")
    status = order.get("OrderStatus")
    if not isinstance(status, str) or not status:
        raise MappingError("OrderStatus is missing")
    channel = order.get("FulfillmentChannel")
    return Head(
        ref, timestamp(order.get("LastUpdateDate")), status, read_text(channel), _cancel_request(items_of(body))
    )


def map_order(body: Any, maps: Maps) -> MappedOrder | Unmapped:
    head = read_head(body)
    order = order_of(body)
    items = items_of(body)
    if not items:
        raise MappingError("the order has no items (getOrderItems gave none)")
    if len(items) > MAX_LINES:
        raise MappingError(f"more than {MAX_LINES} order items")
    missing: list[str] = []
    currency: str | None = None
    lines: list[NewLine] = []
    shipping = tax = discount = 0
    for item in items:
        if not isinstance(item, dict):
            raise MappingError("an order item is not an object")
        quantity = item.get("QuantityOrdered")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or not 0 <= quantity <= 100_000:
            raise MappingError(f"QuantityOrdered {quantity!r} is not a quantity")
        if quantity == 0:  # a line the buyer or Amazon cancelled: nothing to fulfil
            continue
        currency, total = _money(item.get("ItemPrice"), currency, "ItemPrice")
        unit = -(-total // quantity)
        discount += unit * quantity - total
        currency, amount = _money(item.get("ShippingPrice"), currency, "ShippingPrice", optional=True)
        shipping += amount
        for key in ("ItemTax", "ShippingTax"):
            currency, amount = _money(item.get(key), currency, key, optional=True)
            tax += amount
        for key in ("PromotionDiscount", "ShippingDiscount"):
            currency, amount = _money(item.get(key), currency, key, optional=True)
            discount += amount
        sku = read_text(item.get("SellerSKU"))
        ours = maps.skus.get(sku, sku) if sku else None
        if not isinstance(ours, str) or not re.fullmatch(r"\S{1,64}", ours):
            missing.append(f"sku:{sku or '(none on item ' + str(read_text(item.get('OrderItemId')) or '?') + ')'}")
            continue
        lines.append(NewLine(ours, quantity, unit))
    if currency is None:
        raise MappingError("every item has QuantityOrdered 0")
    method, location, address = _delivery(order, items, maps, missing)
    if missing:
        return Unmapped(head.order_ref, tuple(dict.fromkeys(missing)))
    command = PlaceOrder(
        channel=maps.channel,
        channel_order_ref=head.order_ref,
        customer=_customer(order),
        lines=tuple(lines),
        currency=currency,
        method=method,
        location=location,
        address=address,
        shipping_total=shipping,
        tax_total=tax,
        discount_total=discount,
    )
    return MappedOrder(command, NewPayment(provider="marketplace", reference=head.order_ref), head.updated_at)


def _delivery(
    order: dict[str, Any], items: list[Any], maps: Maps, missing: list[str]
) -> tuple[Method, str | None, dict | None]:
    if order.get("IsISPU") is True:
        stores = [read_text(i.get("StoreChainStoreId")) for i in items if isinstance(i, dict)]
        ship_from = order.get("DefaultShipFromLocationAddress")
        name = read_text(ship_from.get("Name")) if isinstance(ship_from, dict) else None
        keys = [k for k in (*stores, name) if k]
        location = next((maps.location(k) for k in keys if maps.location(k)), None)
        if location is None:
            missing.append(f"location:{keys[0] if keys else '(no StoreChainStoreId)'}")
        return Method.PICKUP, location, None
    raw = order.get("ShippingAddress")
    if not isinstance(raw, dict):
        # Amazon gives the address only to an app with the role and a Restricted Data Token.
        raise MappingError("the order has no ShippingAddress (getOrders needs a Restricted Data Token for it)")
    return Method.SHIP, None, _address(raw)


def _address(raw: dict[str, Any]) -> dict[str, Any]:
    lines = [read_text(raw.get(k)) for k in ("AddressLine2", "AddressLine3")]
    fields = {
        "name": read_text(raw.get("Name")),
        "line1": read_text(raw.get("AddressLine1")),
        "line2": ", ".join(p for p in lines if p) or None,
        "city": read_text(raw.get("City")),
        "region": read_text(raw.get("StateOrRegion")),
        "postal_code": read_text(raw.get("PostalCode")),
        "country": read_text(raw.get("CountryCode")),
    }
    address = {k: v[: 20 if k == "postal_code" else 200] for k, v in fields.items() if v}
    if address.get("country") is not None and len(address["country"]) != 2:
        del address["country"]
    return address


def _customer(order: dict[str, Any]) -> CustomerDetails:
    raw = order.get("BuyerInfo")
    buyer: dict[str, Any] = raw if isinstance(raw, dict) else {}
    email = read_text(buyer.get("BuyerEmail"))
    address = order.get("ShippingAddress")
    name = read_text(buyer.get("BuyerName")) or (read_text(address.get("Name")) if isinstance(address, dict) else None)
    account = f"amazon:{email.casefold()}"[:200] if email else None
    return CustomerDetails(email=email, phone=None, name=name and name[:200], account=account)


def _cancel_request(items: list[Any]) -> str | None:
    for item in items:
        request = item.get("BuyerRequestedCancel") if isinstance(item, dict) else None
        if isinstance(request, dict) and str(request.get("IsBuyerRequestedCancel")).lower() == "true":
            return read_text(request.get("BuyerCancelReason")) or ""
    return None


def _money(raw: Any, currency: str | None, field: str, *, optional: bool = False) -> tuple[str | None, int]:
    """An SP-API ``Money`` (``{CurrencyCode, Amount}``) in minor units; every amount of an order is
    in one currency. More precision than the currency has is refused rather than rounded."""
    if raw is None and optional:
        return currency, 0
    if not isinstance(raw, dict):
        raise MappingError(f"{field} is missing or not a Money object")
    code, amount = raw.get("CurrencyCode"), raw.get("Amount")
    if not isinstance(code, str) or code.upper() not in ISO_4217:
        raise MappingError(f"{field}.CurrencyCode {code!r} is not an ISO 4217 code")
    code = code.upper()
    if currency is not None and code != currency:
        raise MappingError(f"{field} is in {code}, the order in {currency}")
    if not isinstance(amount, str) or not _DECIMAL.fullmatch(amount.strip()):
        raise MappingError(f"{field}.Amount {amount!r} is not a decimal amount")
    minor = Decimal(amount.strip()).scaleb(minor_unit_exponent(code))
    if minor != minor.to_integral_value():
        raise MappingError(f"{field}.Amount {amount!r} has more decimals than {code} has")
    if abs(minor) > MAX_AMOUNT:
        raise MappingError(f"{field}.Amount {amount!r} is beyond any amount this service takes")
    # A negative amount (Amazon sends discounts as positive amounts) is taken at its size.
    return code, abs(int(minor))


def timestamp(raw: Any) -> datetime:
    return read_time(raw, "LastUpdateDate")
