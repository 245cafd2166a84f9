"""Square's webhook event envelope (``merchant_id, type, event_id, created_at, data: {type, id,
object}``), read. Pure. Order events carry only a summary (``order_created``, ``order_updated``,
``order_fulfillment_updated``: order id, state, version, location); the order itself is fetched
(``GET /v2/orders/{id}``) by processing. An event that carries the order inline
(``data.object.order``) is read with it. Anything unreadable raises ``MappingError``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

# The field readers are the mapping's own, so an event and an order refuse the same things alike.
from connectors.maps import read_text
from connectors.square.mapping import MappingError, _id, _updated_at, _version
from orchestrator.platform.money import ISO_4217, MAX_AMOUNT

ORDER_EVENTS = ("order.created", "order.updated", "order.fulfillment.updated")
EVENTS = frozenset({*ORDER_EVENTS, "payment.updated"})
_SUMMARIES = ("order_created", "order_updated", "order_fulfillment_updated")


@dataclass(frozen=True, slots=True)
class Payment:
    payment_id: str
    order_id: str | None
    status: str | None
    amount: int | None
    currency: str | None


@dataclass(frozen=True, slots=True)
class Event:
    """One webhook event: ``order_id``, ``state``, ``version`` from an order event's summary."""

    event_id: str
    type: str
    order_id: str | None = None
    state: str | None = None
    version: int | None = None
    updated_at: datetime | None = None
    order: dict[str, Any] | None = None  # the order, when the event carries it inline
    payment: Payment | None = None


def read_event(payload: Any) -> Event:
    if not isinstance(payload, dict):
        raise MappingError("the body is not a JSON object")
    event_id, kind = _id(payload.get("event_id"), "event_id"), read_text(payload.get("type"))
    if kind is None:
        raise MappingError("type is missing")
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    body = data.get("object") if isinstance(data.get("object"), dict) else {}
    if kind == "payment.updated":
        return Event(event_id, kind, payment=_payment(body.get("payment"), data.get("id")))
    if kind not in ORDER_EVENTS:
        return Event(event_id, kind)
    if isinstance(body.get("order"), dict):
        order = body["order"]
        return Event(
            event_id,
            kind,
            _id(order.get("id"), "order.id"),
            read_text(order.get("state")),
            _version(order.get("version")),
            _updated_at(order.get("updated_at")),
            order=order,
        )
    summary = next((body[k] for k in _SUMMARIES if isinstance(body.get(k), dict)), None)
    if summary is None:
        raise MappingError(f"{kind} carries neither an order summary nor an order")
    order_id = summary.get("order_id", data.get("id"))
    return Event(
        event_id,
        kind,
        _id(order_id, "order_id"),
        read_text(summary.get("state")),
        _version(summary.get("version")),
        _updated_at(summary.get("updated_at")),
    )


def _payment(raw: Any, data_id: Any) -> Payment:
    if not isinstance(raw, dict):
        raise MappingError("payment.updated carries no payment object")
    money = raw.get("amount_money") if isinstance(raw.get("amount_money"), dict) else {}
    amount = money.get("amount")
    currency = read_text(money.get("currency"))
    return Payment(
        _id(raw.get("id", data_id), "payment.id"),
        _id(raw["order_id"], "payment.order_id") if raw.get("order_id") is not None else None,
        read_text(raw.get("status")),
        amount if isinstance(amount, int) and not isinstance(amount, bool) and 0 <= amount <= MAX_AMOUNT else None,
        currency if currency in ISO_4217 else None,
    )
