"""Shopify's Admin REST order JSON (the body of the ``orders/*`` webhooks) → the canonical
``PlaceOrder`` with a marketplace-collected payment. Pure: no I/O and no business rule (stock,
sourcing and customer matching are intake's); it only translates, or says why it cannot.

- ``map_order`` gives a ``MappedOrder``, or ``Unmapped`` naming every sku and location the
  connector's maps do not know (the receipt waits for the map to be fixed, then is replayed), or
  raises ``MappingError`` for a payload that is not an order it can read. Nothing else escapes.
- Money: Shopify sends decimal strings in the order's currency (``"199.00"``); they become minor
  units by the currency's ISO 4217 exponent. A price more precise than the currency (``"1.005"``
  USD, ``"100.5"`` JPY) is refused rather than rounded; trailing zeros are exact and accepted.
- A shipping line is a local pickup when its ``delivery_category`` says so (``pick-up``), when its
  code or title names a location of the map (Shopify titles local-pickup lines with the
  location's name), or when it says "pickup"; the store is that location, else the order's
  ``location_id`` through the map.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.maps import MappingError, Maps, read_list, read_objects, read_text, read_time
from orchestrator.customers.model import CustomerDetails
from orchestrator.order_record.states import Method
from orchestrator.orders.commands import NewLine, NewPayment, PlaceOrder
from orchestrator.platform.money import ISO_4217, MAX_AMOUNT, minor_unit_exponent

_DECIMAL = re.compile(r"^\d{1,15}(\.\d{1,12})?$")
_PICKUP_CATEGORIES = frozenset({"pick-up", "pickup", "pick_up", "local_pickup", "local-pickup"})
_PICKUP_WORDS = ("pickup", "pick up", "pick-up", "collect in store", "click & collect", "click and collect")
MAX_LINES = 500


@dataclass(frozen=True, slots=True)
class MappedOrder:
    command: PlaceOrder
    payment: NewPayment
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class Unmapped:
    """What the maps lack: ``sku:<shopify sku>``, ``location:<shopify id or name>``."""

    order_ref: str
    missing: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class OrderRef:
    """An order's identity and version, all ``orders/updated`` and ``orders/cancelled`` need."""

    order_ref: str
    updated_at: datetime | None
    cancel_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Refund:
    """What a ``refunds/create`` says (recorded: the marketplace moves the money, not us)."""

    refund_id: str
    order_ref: str
    amounts: dict[str, str]  # currency → decimal string refunded
    lines: tuple[tuple[str, int], ...]  # (sku, quantity) restocked or refunded
    note: str | None


def order_body(payload: Any) -> dict[str, Any]:
    """The order object: a webhook sends it bare; the REST API's GET wraps it as ``{"order": …}``."""
    if isinstance(payload, dict) and set(payload) == {"order"} and isinstance(payload["order"], dict):
        payload = payload["order"]
    if not isinstance(payload, dict):
        raise MappingError("the body is not a JSON object")
    return payload


def order_ref(payload: Any) -> OrderRef:
    order = order_body(payload)
    reason = order.get("cancel_reason")
    reason = reason if isinstance(reason, str) else None
    return OrderRef(_id(order.get("id"), "id"), _updated_at(order.get("updated_at")), reason)


def map_order(payload: Any, maps: Maps) -> MappedOrder | Unmapped:
    order = order_body(payload)
    ref = _id(order.get("id"), "id")
    currency = _currency(order.get("currency"))
    missing: list[str] = []
    lines = _lines(order.get("line_items"), currency, maps, missing)
    method, location, address = _delivery(order, maps, missing)
    if missing:
        return Unmapped(ref, tuple(dict.fromkeys(missing)))
    taxes_included = order.get("taxes_included") is True
    shipping = _shipping_lines(order)
    command = PlaceOrder(
        channel=maps.channel,
        channel_order_ref=ref,
        customer=_customer(order),
        lines=lines,
        currency=currency,
        method=method,
        location=location,
        address=address,
        shipping_total=sum(_money(_field(s, "price"), currency, "shipping_lines.price") for s in shipping),
        # Prices that include tax already carry it: adding ``total_tax`` again would charge it twice.
        tax_total=0 if taxes_included else _money(order.get("total_tax", "0"), currency, "total_tax"),
        discount_total=_money(order.get("total_discounts", "0"), currency, "total_discounts"),
    )
    return MappedOrder(command, NewPayment(provider="marketplace", reference=ref), _updated_at(order.get("updated_at")))


def read_refund(payload: Any) -> Refund:
    if not isinstance(payload, dict):
        raise MappingError("the body is not a JSON object")
    if set(payload) == {"refund"} and isinstance(payload["refund"], dict):
        payload = payload["refund"]
    amounts: dict[str, Decimal] = {}
    for t in read_list(payload.get("transactions", []), "transactions"):
        if isinstance(t, dict) and t.get("kind") == "refund" and t.get("status") in ("success", None):
            code = _currency(t.get("currency")) if t.get("currency") is not None else "?"
            amounts[code] = amounts.get(code, Decimal(0)) + _decimal(t.get("amount"), "transactions.amount")
    lines = []
    for item in read_list(payload.get("refund_line_items", []), "refund_line_items"):
        if not isinstance(item, dict):
            raise MappingError("a refund line item is not an object")
        line = item.get("line_item") if isinstance(item.get("line_item"), dict) else {}
        sku = line.get("sku") if isinstance(line.get("sku"), str) else ""
        lines.append((sku, _quantity(item.get("quantity"), "refund_line_items.quantity")))
    note = payload.get("note")
    return Refund(
        _id(payload.get("id"), "id"),
        _id(payload.get("order_id"), "order_id"),
        {k: str(v) for k, v in amounts.items()},
        tuple(lines),
        note if isinstance(note, str) else None,
    )


def _lines(raw: Any, currency: str, maps: Maps, missing: list[str]) -> tuple[NewLine, ...]:
    lines = []
    for item in read_objects(raw, "line_items", MAX_LINES):
        quantity = _quantity(item.get("quantity"), "line_items.quantity")
        price = _money(_field(item, "price"), currency, "line_items.price")
        sku = item.get("sku")
        if sku is not None and not isinstance(sku, str):
            raise MappingError("line_items.sku is not a string")
        if not sku or not sku.strip():
            missing.append(f"sku:(none on line item {_text(item.get('id')) or '?'})")
            continue
        ours = maps.skus.get(sku, sku)
        if not isinstance(ours, str) or not re.fullmatch(r"\S{1,64}", ours):
            missing.append(f"sku:{sku}")
            continue
        lines.append(NewLine(ours, quantity, price))
    return tuple(lines)


def _delivery(order: dict[str, Any], maps: Maps, missing: list[str]) -> tuple[Method, str | None, dict | None]:
    pickup = next((s for s in _shipping_lines(order) if _is_pickup(s, maps)), None)
    if pickup is not None:
        names = [_text(pickup.get(k)) for k in ("code", "title")]
        location = next((maps.location(n) for n in names if maps.location(n)), None)
        where = _text(order.get("location_id"))
        location = location or maps.location(where)
        if location is None:
            missing.append(f"location:{where or names[1] or names[0] or '?'}")
        return Method.PICKUP, location, None
    address = order.get("shipping_address")
    if not isinstance(address, dict):
        raise MappingError("the order has neither a shipping address nor a local-pickup shipping line")
    return Method.SHIP, None, _address(address)


def _is_pickup(line: dict[str, Any], maps: Maps) -> bool:
    category = _text(line.get("delivery_category"))
    if category and category.casefold() in _PICKUP_CATEGORIES:
        return True
    names = [n for n in (_text(line.get("code")), _text(line.get("title"))) if n]
    return any(maps.location(n) for n in names) or any(w in n.casefold() for n in names for w in _PICKUP_WORDS)


def _shipping_lines(order: dict[str, Any]) -> list[dict[str, Any]]:
    lines = read_list(order.get("shipping_lines", []), "shipping_lines")
    if not all(isinstance(s, dict) for s in lines):
        raise MappingError("a shipping line is not an object")
    return lines


def _customer(order: dict[str, Any]) -> CustomerDetails:
    raw = order.get("customer")
    who: dict[str, Any] = raw if isinstance(raw, dict) else {}
    first, last = _text(who.get("first_name")), _text(who.get("last_name"))
    name = " ".join(p for p in (first, last) if p) or None
    if name is None and isinstance(order.get("shipping_address"), dict):
        name = _text(order["shipping_address"].get("name"))
    email = _text(who.get("email")) or _text(order.get("email")) or _text(order.get("contact_email"))
    phone = _text(who.get("phone")) or _text(order.get("phone"))
    account = f"shopify:{_text(who.get('id'))}" if _text(who.get("id")) else None
    return CustomerDetails(email=email, phone=phone, name=name and name[:200], account=account)


def _address(raw: dict[str, Any]) -> dict[str, Any]:
    names = (_text(raw.get("first_name")), _text(raw.get("last_name")))
    fields = {
        "name": _text(raw.get("name")) or " ".join(p for p in names if p),
        "line1": _text(raw.get("address1")),
        "line2": _text(raw.get("address2")),
        "city": _text(raw.get("city")),
        "region": _text(raw.get("province_code")) or _text(raw.get("province")),
        "postal_code": _text(raw.get("zip")),
        "country": _text(raw.get("country_code")),
    }
    address: dict[str, Any] = {k: v[: 20 if k == "postal_code" else 200] for k, v in fields.items() if v}
    if address.get("country") is not None and len(address["country"]) != 2:
        del address["country"]
    lat, lon = _coordinate(raw.get("latitude"), 90), _coordinate(raw.get("longitude"), 180)
    if lat is not None and lon is not None:
        address.update(lat=lat, lon=lon)
    return address


def _coordinate(raw: Any, bound: float) -> float | None:
    try:
        value = float(raw) if isinstance(raw, (int, float, str)) and not isinstance(raw, bool) else None
    except ValueError:
        return None
    return value if value is not None and -bound <= value <= bound else None


def _id(raw: Any, field: str) -> str:
    """Shopify ids are integers; some payloads carry them as strings."""
    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        raise MappingError(f"{field} is missing or not an id")
    text = str(raw).strip()
    if not re.fullmatch(r"[0-9A-Za-z_.:-]{1,80}", text):
        raise MappingError(f"{field} is not an id")
    return text


def _currency(raw: Any) -> str:
    if not isinstance(raw, str) or raw.upper() not in ISO_4217:
        raise MappingError(f"currency {raw!r} is not an ISO 4217 code")
    return raw.upper()


def _decimal(raw: Any, field: str) -> Decimal:
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str) or not _DECIMAL.fullmatch(raw.strip()):
        raise MappingError(f"{field} {raw!r} is not a decimal amount")
    try:
        return Decimal(raw.strip())
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise MappingError(f"{field} {raw!r} is not a decimal amount") from None


def _money(raw: Any, currency: str, field: str) -> int:
    """A decimal string in ``currency`` → minor units; more precision than the currency has is refused."""
    minor = _decimal(raw, field).scaleb(minor_unit_exponent(currency))
    if minor != minor.to_integral_value():
        raise MappingError(f"{field} {raw!r} has more decimals than {currency} has")
    if minor > MAX_AMOUNT:
        raise MappingError(f"{field} {raw!r} is beyond any amount this service takes")
    return int(minor)


def _quantity(raw: Any, field: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 < raw <= 100_000:
        raise MappingError(f"{field} {raw!r} is not a positive quantity")
    return raw


def _field(obj: dict[str, Any], key: str) -> Any:
    if key not in obj:
        raise MappingError(f"{key} is missing")
    return obj[key]


def _text(raw: Any) -> str | None:
    """A string field as text (ids as their digits), blank as None."""
    if isinstance(raw, bool) or raw is None:
        return None
    if isinstance(raw, int):
        return str(raw)
    return read_text(raw)


def _updated_at(raw: Any) -> datetime | None:
    return None if raw is None else read_time(raw, "updated_at")
