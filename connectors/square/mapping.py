"""Square's webhook events and Orders API ``Order`` object → the canonical ``PlaceOrder`` with a
Square-collected (``marketplace``) payment. Pure: no I/O and no business rule; it translates, or
says why it cannot.

- The order is RetrieveOrder's (``GET /v2/orders/{id}``; an event's envelope is ``events.py``'s).
- ``map_order`` gives a ``MappedOrder``; an ``InStoreSale`` for an order without a fulfillment (a
  sale at the counter, handed over there); ``Unmapped`` naming every sku and location the maps do
  not know; or raises ``MappingError`` for what is not an order it can read. Nothing else escapes.
- Money: Square sends ``{amount, currency}`` with ``amount`` already in minor units. Quantities are
  decimal strings; only whole quantities are taken (a weighed ``"1.5"`` is refused).
- A line's sku: ``sku_map`` by the line's ``catalog_object_id`` (the item variation id), else by
  ``"<name> <variation_name>"``, else by ``name``; with no map entry, the catalog object id (or the
  name) is taken as it is, and intake names it if we do not sell it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.maps import MappingError, Maps, read_list, read_objects, read_text, read_time
from orchestrator.customers.model import CustomerDetails
from orchestrator.order_record.states import Method
from orchestrator.orders.commands import NewLine, NewPayment, PlaceOrder
from orchestrator.platform.money import ISO_4217, MAX_AMOUNT

_QUANTITY = re.compile(r"^\d{1,6}(\.0+)?$")
_ID = re.compile(r"[0-9A-Za-z_.:-]{1,80}")
_SKU = re.compile(r"\S{1,64}")
_LIVE = ("PROPOSED", "RESERVED", "PREPARED", "COMPLETED", None)
MAX_LINES = 500


@dataclass(frozen=True, slots=True)
class MappedOrder:
    command: PlaceOrder
    payment: NewPayment
    state: str
    version: int | None
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class InStoreSale:
    """An order without a fulfillment: sold and (when ``COMPLETED``) handed over at the counter."""

    order_ref: str
    state: str
    location: str | None  # ours, when mapped


@dataclass(frozen=True, slots=True)
class Unmapped:
    """What the maps lack: ``sku:<catalog object id or name>``, ``location:<Square location id>``."""

    order_ref: str
    missing: tuple[str, ...]


def order_body(payload: Any) -> dict[str, Any]:
    """The order: RetrieveOrder answers ``{"order": …}``; an inline order is bare."""
    if isinstance(payload, dict) and isinstance(payload.get("order"), dict):
        payload = payload["order"]
    if not isinstance(payload, dict):
        raise MappingError("the order is not a JSON object")
    return payload


def map_order(payload: Any, maps: Maps) -> MappedOrder | InStoreSale | Unmapped:
    order = order_body(payload)
    ref = _id(order.get("id"), "id")
    state = read_text(order.get("state")) or "OPEN"
    where = read_text(order.get("location_id"))
    fulfillments = read_list(order.get("fulfillments"), "fulfillments")
    if not fulfillments:
        return InStoreSale(ref, state, maps.location(where))
    currency = _currency(order)
    missing: list[str] = []
    lines = _lines(order.get("line_items"), currency, maps, missing)
    method, location, address, recipient = _delivery(fulfillments, where, maps, missing)
    if missing:
        return Unmapped(ref, tuple(dict.fromkeys(missing)))
    command = PlaceOrder(
        channel=maps.channel,
        channel_order_ref=ref,
        customer=_customer(order, recipient),
        lines=lines,
        currency=currency,
        method=method,
        location=location,
        address=address,
        # Square's service charges (a delivery fee, a packaging charge) are what the goods cost on top.
        shipping_total=_money(order.get("total_service_charge_money"), currency, "total_service_charge_money"),
        tax_total=_additive_tax(order, currency),
        discount_total=_money(order.get("total_discount_money"), currency, "total_discount_money"),
    )
    payment = NewPayment(provider="marketplace", reference=ref)
    return MappedOrder(command, payment, state, _version(order.get("version")), _updated_at(order.get("updated_at")))


def _lines(raw: Any, currency: str, maps: Maps, missing: list[str]) -> tuple[NewLine, ...]:
    lines = []
    for item in read_objects(raw, "line_items", MAX_LINES):
        quantity = _quantity(item.get("quantity"))
        price = _money(_field(item, "base_price_money"), currency, "line_items.base_price_money")
        catalog, name, variation = (read_text(item.get(k)) for k in ("catalog_object_id", "name", "variation_name"))
        keys = [k for k in (catalog, f"{name} {variation}" if name and variation else None, name) if k]
        if not keys:
            missing.append(f"sku:(none on line item {read_text(item.get('uid')) or '?'})")
            continue
        ours = next((maps.skus[k] for k in keys if k in maps.skus), keys[0])
        if not isinstance(ours, str) or not _SKU.fullmatch(ours):
            missing.append(f"sku:{keys[0][:100]}")
            continue
        lines.append(NewLine(ours, quantity, price))
    return tuple(lines)


def _delivery(
    fulfillments: list[Any], where: str | None, maps: Maps, missing: list[str]
) -> tuple[Method, str | None, dict | None, dict[str, Any]]:
    if not all(isinstance(f, dict) for f in fulfillments):
        raise MappingError("a fulfillment is not an object")
    live = [f for f in fulfillments if read_text(f.get("state")) in _LIVE]
    chosen = next((f for f in live if f.get("type") in ("PICKUP", "SHIPMENT", "DELIVERY")), None)
    if chosen is None:
        raise MappingError("the order has no pickup, shipment or delivery fulfillment that is still live")
    details_key = {"PICKUP": "pickup_details", "SHIPMENT": "shipment_details", "DELIVERY": "delivery_details"}
    details = chosen.get(details_key[chosen["type"]])
    details = details if isinstance(details, dict) else {}
    recipient = details.get("recipient") if isinstance(details.get("recipient"), dict) else {}
    if chosen["type"] == "PICKUP":
        location = maps.location(where)
        if location is None:
            missing.append(f"location:{where or '?'}")
        return Method.PICKUP, location, None, recipient
    address = recipient.get("address")
    if not isinstance(address, dict):
        raise MappingError(f"the {chosen['type'].lower()} fulfillment has no recipient address")
    return Method.SHIP, None, _address(address, recipient), recipient


def _customer(order: dict[str, Any], recipient: dict[str, Any]) -> CustomerDetails:
    name = read_text(recipient.get("display_name"))
    customer_id = read_text(order.get("customer_id")) or read_text(recipient.get("customer_id"))
    return CustomerDetails(
        email=read_text(recipient.get("email_address")),
        phone=read_text(recipient.get("phone_number")),
        name=name and name[:200],
        account=f"square:{customer_id[:180]}" if customer_id else None,
    )


def _address(raw: dict[str, Any], recipient: dict[str, Any]) -> dict[str, Any]:
    fields = {
        "name": read_text(recipient.get("display_name")),
        "line1": read_text(raw.get("address_line_1")),
        "line2": read_text(raw.get("address_line_2")),
        "city": read_text(raw.get("locality")),
        "region": read_text(raw.get("administrative_district_level_1")),
        "postal_code": read_text(raw.get("postal_code")),
        "country": read_text(raw.get("country")),
    }
    address: dict[str, Any] = {k: v[: 20 if k == "postal_code" else 200] for k, v in fields.items() if v}
    if address.get("country") is not None and not re.fullmatch(r"[A-Z]{2}", address["country"]):
        del address["country"]  # Square's Country enum is ISO 3166-1 alpha-2; ZZ etc. are kept out
    return address


def _additive_tax(order: dict[str, Any], currency: str) -> int:
    """``total_tax_money`` less what inclusive taxes (already in the prices) account for."""
    total = _money(order.get("total_tax_money"), currency, "total_tax_money")
    inclusive = 0
    for tax in read_list(order.get("taxes"), "taxes"):
        if isinstance(tax, dict) and tax.get("type") == "INCLUSIVE":
            inclusive += _money(tax.get("applied_money"), currency, "taxes.applied_money")
    if inclusive > total:
        raise MappingError("inclusive taxes exceed total_tax_money")
    return total - inclusive


def _currency(order: dict[str, Any]) -> str:
    money = order.get("total_money")
    if not isinstance(money, dict):
        items = order.get("line_items") if isinstance(order.get("line_items"), list) else []
        first = items[0] if items and isinstance(items[0], dict) else {}
        money = first.get("base_price_money")
    code = money.get("currency") if isinstance(money, dict) else None
    if not isinstance(code, str) or code not in ISO_4217:
        raise MappingError(f"currency {code!r} is not an ISO 4217 code")
    return code


def _money(raw: Any, currency: str, field: str) -> int:
    """A Square Money (``{amount, currency}``, amount in minor units); absent is 0."""
    if raw is None:
        return 0
    if not isinstance(raw, dict):
        raise MappingError(f"{field} is not a Money object")
    amount = raw.get("amount", 0)
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount <= MAX_AMOUNT:
        raise MappingError(f"{field}.amount {amount!r} is not an amount this service takes")
    if raw.get("currency", currency) != currency:
        raise MappingError(f"{field} is in {raw.get('currency')!r}, the order in {currency}")
    return amount


def _quantity(raw: Any) -> int:
    if not isinstance(raw, str) or not _QUANTITY.fullmatch(raw.strip()):
        raise MappingError(f"line_items.quantity {raw!r} is not a whole quantity")
    value = int(raw.strip().split(".")[0])
    if not 0 < value <= 100_000:
        raise MappingError(f"line_items.quantity {raw!r} is not a positive quantity")
    return value


def _version(raw: Any) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise MappingError(f"version {raw!r} is not a version number")
    return raw


def _id(raw: Any, field: str) -> str:
    if not isinstance(raw, str) or not _ID.fullmatch(raw.strip()):
        raise MappingError(f"{field} is missing or not an id")
    return raw.strip()


def _field(obj: dict[str, Any], key: str) -> Any:
    if obj.get(key) is None:
        raise MappingError(f"{key} is missing")
    return obj[key]


def _updated_at(raw: Any) -> datetime | None:
    return None if raw is None else read_time(raw, "updated_at")
