"""Customer notifications, pure: which events make one, where it goes, what it says.

Routing: the customer's preferred contact when its channel has a notification subscription;
else the channel the customer was last reached on; else email, sms, whatsapp, push — the first
the customer can be reached on and the retailer sends through.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_datetime
from babel.numbers import format_currency

from orchestrator.platform.money import minor_unit_exponent

CHANNELS = ("email", "sms", "whatsapp", "push")
MASK = "••••••"  # the pickup code, in what is kept once a notification was sent
_BY_EVENT = {
    "order.placed": "confirmed",
    "fulfillment.ready_for_pickup": "ready_for_pickup",
    "fulfillment.pickup_reminder": "pickup_reminder",
    "fulfillment.shipped": "shipped",
    "fulfillment.delayed": "delayed",
    "order.action_required": "action_required",
    "order.cancelled": "cancelled",
    "payment.refunded": "refunded",
}
_FALLBACKS = {"transfer": "wait for the transfer to the store you chose", "cancel": "cancel what cannot be prepared"}


def template_for(event_type: str, data: Mapping[str, Any]) -> str | None:
    """The notification an event makes, if any (a transfer between stores is not the customer's)."""
    if event_type == "fulfillment.shipped" and data.get("method") != "ship":
        return None
    return _BY_EVENT.get(event_type)


@dataclass(frozen=True, slots=True)
class Contact:
    customer_id: str
    email: str | None
    phone: str | None
    preferred_channel: str | None = None
    preferred_identity: str | None = None
    last_channel: str | None = None  # of the last notification delivered to the customer


def _recipient(contact: Contact, channel: str) -> str | None:
    if channel == contact.preferred_channel and contact.preferred_identity:
        return contact.preferred_identity
    if channel == "email":
        return contact.email
    if channel in ("sms", "whatsapp"):
        return contact.phone
    return f"customer:{contact.customer_id}"  # push: the retailer's app knows its customer


def route(contact: Contact, available: Iterable[str]) -> tuple[str, str] | None:
    """(channel, recipient), or None when the customer cannot be reached on any channel sent through."""
    offered = set(available)
    for channel in (contact.preferred_channel, contact.last_channel, *CHANNELS):
        if channel in offered and (recipient := _recipient(contact, channel)):
            return channel, recipient
    return None


def money(amount: int, currency: str, locale: str = "en") -> str:
    exponent = minor_unit_exponent(currency)
    return format_currency(Decimal(amount).scaleb(-exponent), currency, locale=locale)


def local_time(at: datetime | str | None, timezone: str | None, locale: str = "en") -> str:
    if at is None:
        return "?"
    moment = datetime.fromisoformat(at) if isinstance(at, str) else at
    try:
        zone = ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return format_datetime(moment, "EEE d MMM, HH:mm", tzinfo=zone, locale=locale)


def _hours(opening_hours: Mapping[str, list[list[str]]] | None) -> str | None:
    if not opening_hours:
        return None
    days = [(day, spans) for day, spans in opening_hours.items() if spans]
    return "; ".join(f"{day.title()} " + ", ".join(f"{a}–{b}" for a, b in spans) for day, spans in days) or None


def context_of(
    template: str,
    data: Mapping[str, Any],
    order: Mapping[str, Any],
    store: Mapping[str, Any] | None,
    pickup_code: str | None,
) -> dict[str, Any]:
    """What the template is filled with. ``order``: number, currency, total, customer_name;
    ``store``: the event's location (name, address, timezone, opening_hours)."""
    timezone = store.get("timezone") if store else None
    address = (store or {}).get("address") or {}
    context: dict[str, Any] = {
        "order_number": order["number"],
        "customer_name": order.get("customer_name"),
        "total": money(order["total"], order["currency"]),
        "store_name": (store or {}).get("name") or data.get("location"),
        "store_address": ", ".join(str(address[k]) for k in ("line1", "city") if address.get(k)) or None,
        "opening_hours": _hours((store or {}).get("opening_hours")),
        "deadline": local_time(data.get("pickup_deadline") or data.get("deadline"), timezone),
        "expected": local_time(data.get("expected_ready_at"), timezone),
        "pickup": data.get("method") in ("pickup", "curbside"),
        "pickup_code": pickup_code,
        "carrier": data.get("carrier"),
        "tracking_number": data.get("tracking_number"),
        "reason": str(data.get("reason") or "").replace("_", " "),
        "options": [o.get("description", "") for o in data.get("options") or []],
        "fallback": _FALLBACKS.get(str(data.get("fallback")), str(data.get("fallback") or "")),
    }
    if template == "refunded":
        context["amount"] = money(int(data.get("amount_refunded") or 0), order["currency"])
    return context


def body_for(channel: str, rendered: Mapping[str, str]) -> dict[str, str]:
    """What a channel's provider gets: a whole email, or a short text (and a title for push)."""
    if channel == "email":
        return {"subject": rendered["subject"], "text": rendered["text"], "html": rendered["html"]}
    if channel == "push":
        return {"title": rendered["subject"], "text": rendered["short"]}
    return {"text": rendered["short"]}
