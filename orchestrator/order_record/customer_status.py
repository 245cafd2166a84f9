"""The one sentence a customer sees about their order, on every channel: derived from the order's
status and fulfillments and the time now, worded from a Babel message catalogue. Pure: the
caller hands in the facts and the stores they name; nothing here reads a database or a clock."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from orchestrator.order_record.states import CLOSED_WITHOUT_FULFILLING, OPEN_STATES, Method, Status
from orchestrator.order_record.status import OrderStatus

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "customer_status"
DEFAULT_LOCALE = "en"

# Where a parcel can be followed, by carrier (normalised: lower case, letters only). Another
# carrier's parcel is still "on its way", without a link.
TRACKING_URLS = {
    "dhl": "https://www.dhl.com/global-en/home/tracking/tracking-express.html?submit=1&tracking-id={number}",
    "ups": "https://www.ups.com/track?tracknum={number}",
    "fedex": "https://www.fedex.com/fedextrack/?trknbr={number}",
    "usps": "https://tools.usps.com/go/TrackConfirmAction?tLabels={number}",
}


class StatusCode(StrEnum):
    CONFIRMED = "confirmed"
    PREPARING = "preparing"
    READY_FOR_PICKUP = "ready_for_pickup"
    ON_ITS_WAY = "on_its_way"
    PICKED_UP = "picked_up"
    DELIVERED = "delivered"
    PARTLY_READY = "partly_ready"
    DELAYED = "delayed"
    CANCELLED = "cancelled"
    ACTION_NEEDED = "action_needed"


class StatusLocation(msgspec.Struct, kw_only=True):
    """The store the customer goes to (or waits on), with what they need to get there in time."""

    code: str
    name: str
    address: dict[str, Any]
    timezone: str
    # {"mon": [["09:00", "20:00"]], ..., "sun": []} in ``timezone``; null: not known.
    opening_hours: dict[str, list[list[str]]] | None = None


class CustomerStatus(msgspec.Struct, kw_only=True):
    code: str
    text: str
    location: StatusLocation | None = None
    # Until when the state holds for the customer: the last moment to collect a ready pickup.
    until: datetime | None = None
    tracking_url: str | None = None
    # The changes the customer may choose (``action_required``); empty otherwise.
    options: list[dict[str, Any]] = msgspec.field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FulfillmentFacts:
    method: str
    status: str
    location: str  # the location's code
    expected_ready_at: datetime | None = None
    pickup_deadline: datetime | None = None
    carrier: str | None = None
    tracking_number: str | None = None
    close_reason: str | None = None
    handed_over: int = 0


@dataclass(frozen=True, slots=True)
class OrderFacts:
    status: str
    fulfillments: Sequence[FulfillmentFacts]
    pickup_location: str | None = None
    attention_reason: str | None = None
    action_options: Sequence[dict[str, Any]] | None = None


@cache
def translations(locale: str = DEFAULT_LOCALE) -> Translations:
    """The locale's catalogue, compiled from its ``.po`` in memory (no build step, nothing stale
    to commit); an unknown locale reads English."""
    po = LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not po.exists():
        po = LOCALE_DIR / DEFAULT_LOCALE / "LC_MESSAGES" / f"{DOMAIN}.po"
    with po.open("rb") as f:
        catalog = read_po(f, locale=locale if po.parent.parent.name == locale else DEFAULT_LOCALE, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def tracking_url(carrier: str | None, number: str | None) -> str | None:
    if not carrier or not number:
        return None
    pattern = TRACKING_URLS.get(re.sub(r"[^a-z]", "", carrier.lower()))
    return pattern.format(number=quote(number, safe="")) if pattern else None


def customer_status(
    order: OrderFacts, stores: Mapping[str, StatusLocation], now: datetime, locale: str = DEFAULT_LOCALE
) -> CustomerStatus:
    """``stores``: the locations the order's fulfillments name, by code (a missing one shows by
    its code)."""
    words = _Words(translations(locale), locale)
    status = order.status
    if status == OrderStatus.CANCELLED:
        reason = next((f.close_reason for f in order.fulfillments if f.close_reason), None)
        reason = _readable(reason) if reason else words("reason.cancelled")
        return CustomerStatus(code=StatusCode.CANCELLED, text=words("status.cancelled", reason=reason))
    if status in (OrderStatus.ACTION_REQUIRED, OrderStatus.NEEDS_ATTENTION):
        what = _readable(order.attention_reason) if order.attention_reason else words("reason.attention")
        return CustomerStatus(
            code=StatusCode.ACTION_NEEDED,
            text=words("status.action_needed", what=what),
            location=_store(stores, order.pickup_location),
            options=list(order.action_options or []),
        )
    if status == OrderStatus.PENDING_PAYMENT:
        return CustomerStatus(
            code=StatusCode.ACTION_NEEDED, text=words("status.action_needed", what=words("reason.payment"))
        )
    facing = [f for f in order.fulfillments if f.method != Method.TRANSFER]
    live = [f for f in facing if f.status not in CLOSED_WITHOUT_FULFILLING or f.handed_over]
    waiting = [f for f in live if f.status in OPEN_STATES and f.status != Status.READY_FOR_PICKUP]
    ready = [f for f in live if f.status == Status.READY_FOR_PICKUP]
    late = [f for f in waiting if f.expected_ready_at is not None and f.expected_ready_at < now]
    if late:
        return _delayed(min(late, key=lambda f: f.expected_ready_at or now), stores, words)
    if ready:
        first = min(ready, key=lambda f: f.pickup_deadline or now)
        store = _store(stores, first.location)
        until = first.pickup_deadline
        if waiting:
            return CustomerStatus(code=StatusCode.PARTLY_READY, text=words("status.partly_ready"), location=store)
        text = words("status.ready_for_pickup", store=_name(store, first.location), until=words.time(until, store))
        return CustomerStatus(code=StatusCode.READY_FOR_PICKUP, text=text, location=store, until=until)
    shipped = [f for f in live if f.status == Status.SHIPPED]
    if shipped:
        parcel = shipped[0]
        text = words("status.on_its_way_with", carrier=parcel.carrier) if parcel.carrier else words("status.on_its_way")
        url = tracking_url(parcel.carrier, parcel.tracking_number)
        return CustomerStatus(code=StatusCode.ON_ITS_WAY, text=text, tracking_url=url)
    if waiting:
        started = [f for f in waiting if f.status != Status.PENDING]
        if not started:
            return CustomerStatus(code=StatusCode.CONFIRMED, text=words("status.confirmed"))
        at = _preparing_at(started, order.pickup_location)
        store = _store(stores, at.location)
        location = store if Method(at.method).is_pickup else None
        text = words("status.preparing", store=_name(store, at.location))
        return CustomerStatus(code=StatusCode.PREPARING, text=text, location=location)
    if live and all(Method(f.method).is_pickup for f in live):
        return CustomerStatus(code=StatusCode.PICKED_UP, text=words("status.picked_up"))
    if live:
        return CustomerStatus(code=StatusCode.DELIVERED, text=words("status.delivered"))
    return CustomerStatus(code=StatusCode.CONFIRMED, text=words("status.confirmed"))


class _Words:
    def __init__(self, catalogue: Translations, locale: str) -> None:
        self._catalogue, self._locale = catalogue, locale

    def __call__(self, key: str, **values: str) -> str:
        return self._catalogue.gettext(key).format(**values)

    def time(self, at: datetime | None, store: StatusLocation | None) -> str:
        if at is None:
            return "?"
        return format_datetime(at, self("format.time"), tzinfo=_zone(store), locale=self._locale)


def _delayed(late: FulfillmentFacts, stores: Mapping[str, StatusLocation], words: _Words) -> CustomerStatus:
    store = _store(stores, late.location)
    pickup = Method(late.method).is_pickup
    time = words.time(late.expected_ready_at, store)
    reason = (
        words("reason.late_at_store", store=_name(store, late.location), time=time)
        if pickup
        else words("reason.late", time=time)
    )
    return CustomerStatus(
        code=StatusCode.DELAYED, text=words("status.delayed", reason=reason), location=store if pickup else None
    )


def _preparing_at(started: list[FulfillmentFacts], pickup_location: str | None) -> FulfillmentFacts:
    """The pickup store when it is among them: that is where the customer goes."""
    return next((f for f in started if f.location == pickup_location), started[0])


def _store(stores: Mapping[str, StatusLocation], code: str | None) -> StatusLocation | None:
    return stores.get(code) if code else None


def _name(store: StatusLocation | None, code: str) -> str:
    return store.name if store else code


def _zone(store: StatusLocation | None) -> ZoneInfo:
    try:
        return ZoneInfo(store.timezone if store else "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _readable(reason: str) -> str:
    """A machine reason (``payment_failed``) reads as words; a person's reason stays as written."""
    return reason.replace("_", " ") if re.fullmatch(r"[a-z_]+", reason) else reason
