"""The customer-facing status: one code and one sentence per situation, worded from the Babel
catalogue, the store's time shown on the store's clock."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from orchestrator.order_record import customer_status as cs
from orchestrator.order_record.customer_status import (
    FulfillmentFacts,
    OrderFacts,
    StatusLocation,
    customer_status,
    tracking_url,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HOURS = {"mon": [["09:00", "20:00"]], "sun": []}
MITTE = StatusLocation(
    code="S1", name="Berlin Mitte", address={"city": "Berlin"}, timezone="Europe/Berlin", opening_hours=HOURS
)
DC = StatusLocation(code="DC1", name="Central DC", address={}, timezone="UTC")
STORES = {"S1": MITTE, "DC1": DC}


def fo(status: str, method: str = "pickup", location: str = "S1", **kw) -> FulfillmentFacts:
    return FulfillmentFacts(method=method, status=status, location=location, **kw)


def order(status: str, *fulfillments: FulfillmentFacts, **kw) -> OrderFacts:
    return OrderFacts(status=status, fulfillments=fulfillments, pickup_location=kw.pop("pickup", "S1"), **kw)


def status_of(o: OrderFacts, now: datetime = NOW):
    return customer_status(o, STORES, now)


def test_a_new_order_is_confirmed() -> None:
    s = status_of(order("received", fo("pending")))
    assert (s.code, s.text, s.location, s.until, s.tracking_url, s.options) == (
        "confirmed",
        "Order confirmed",
        None,
        None,
        None,
        [],
    )


@pytest.mark.parametrize("status", ["accepted", "picking"])
def test_an_accepted_pickup_is_being_prepared_at_its_store_with_the_store_shown(status: str) -> None:
    s = status_of(order("in_progress", fo(status)))
    assert (s.code, s.text) == ("preparing", "Being prepared at Berlin Mitte")
    assert s.location == MITTE and s.location.opening_hours == HOURS


def test_a_shipment_being_prepared_names_the_warehouse_but_shows_no_location() -> None:
    s = status_of(order("in_progress", fo("packed", "ship", "DC1"), pickup=None))
    assert (s.code, s.text, s.location) == ("preparing", "Being prepared at Central DC", None)


def test_a_ready_pickup_says_until_when_on_the_stores_clock() -> None:
    deadline = datetime(2026, 12, 3, 17, 0, tzinfo=UTC)  # 18:00 in Berlin
    s = status_of(order("ready_for_pickup", fo("ready_for_pickup", pickup_deadline=deadline)))
    assert s.code == "ready_for_pickup"
    assert s.text == "Ready for pickup at Berlin Mitte until Thu 3 Dec, 18:00"
    assert (s.until, s.location) == (deadline, MITTE)


def test_a_ready_pickup_is_not_delayed_even_past_its_expected_time() -> None:
    s = status_of(order("ready_for_pickup", fo("ready_for_pickup", expected_ready_at=NOW - timedelta(hours=5))))
    assert s.code == "ready_for_pickup"


@pytest.mark.parametrize(
    ("carrier", "url"),
    [
        ("DHL", "https://www.dhl.com/global-en/home/tracking/tracking-express.html?submit=1&tracking-id=JD 1%2F2"),
        ("ups", "https://www.ups.com/track?tracknum=JD 1%2F2"),
        ("FedEx", "https://www.fedex.com/fedextrack/?trknbr=JD 1%2F2"),
        ("USPS", "https://tools.usps.com/go/TrackConfirmAction?tLabels=JD 1%2F2"),
    ],
)
def test_a_shipped_parcel_is_on_its_way_with_the_carriers_tracking_link(carrier: str, url: str) -> None:
    s = status_of(
        order("completed", fo("shipped", "ship", "DC1", carrier=carrier, tracking_number="JD 1/2"), pickup=None)
    )
    assert (s.code, s.text) == ("on_its_way", f"On its way with {carrier}")
    assert s.tracking_url == url.replace(" ", "%20")


def test_an_unknown_carrier_is_on_its_way_without_a_link() -> None:
    s = status_of(order("completed", fo("shipped", "ship", "DC1", carrier="Hermes", tracking_number="H1")))
    assert (s.code, s.text, s.tracking_url) == ("on_its_way", "On its way with Hermes", None)
    bare = status_of(order("completed", fo("shipped", "ship", "DC1")))
    assert (bare.text, bare.tracking_url) == ("On its way", None)
    assert tracking_url("DHL", None) is None


def test_a_collected_pickup_is_picked_up() -> None:
    s = status_of(order("completed", fo("picked_up"), fo("expired", handed_over=1)))
    assert (s.code, s.text, s.location) == ("picked_up", "Picked up", None)


def test_a_delivered_parcel_is_delivered() -> None:
    s = status_of(order("completed", fo("delivered", "ship", "DC1"), fo("picked_up")))
    assert (s.code, s.text) == ("delivered", "Delivered")


def test_one_store_ready_and_another_still_preparing_is_partly_ready() -> None:
    deadline = NOW + timedelta(days=2)
    s = status_of(order("in_progress", fo("ready_for_pickup", pickup_deadline=deadline), fo("accepted", "ship", "DC1")))
    assert (s.code, s.text, s.location) == ("partly_ready", "Partly ready", MITTE)


def test_past_its_expected_ready_time_and_not_ready_is_delayed() -> None:
    expected = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # 11:00 in Berlin
    s = status_of(order("in_progress", fo("picking", expected_ready_at=expected)))
    assert (s.code, s.text) == ("delayed", "Delayed: expected ready at Berlin Mitte by Tue 1 Dec, 11:00")
    assert s.location == MITTE
    on_time = status_of(order("in_progress", fo("picking", expected_ready_at=expected)), now=expected)
    assert on_time.code == "preparing"
    late_parcel = status_of(order("received", fo("pending", "ship", "DC1", expected_ready_at=expected)))
    assert (late_parcel.text, late_parcel.location) == ("Delayed: expected ready by Tue 1 Dec, 10:00", None)


def test_a_transfer_feeding_the_pickup_is_not_what_the_customer_waits_on() -> None:
    late_transfer = fo("picking", "transfer", "DC1", expected_ready_at=NOW - timedelta(hours=1))
    s = status_of(order("received", fo("pending"), late_transfer))
    assert s.code == "confirmed"


def test_a_cancelled_order_says_why() -> None:
    s = status_of(order("cancelled", fo("cancelled", close_reason="payment_failed")))
    assert (s.code, s.text) == ("cancelled", "Cancelled: payment failed")
    spoken = status_of(order("cancelled", fo("cancelled", close_reason="Customer changed their mind")))
    assert spoken.text == "Cancelled: Customer changed their mind"
    bare = status_of(order("cancelled", fo("rejected")))
    assert bare.text == "Cancelled: the order was cancelled"


def test_an_order_waiting_on_the_customer_needs_action_with_its_options() -> None:
    options = [{"id": "wait", "change": {}}, {"id": "cancel_missing", "change": {}}]
    s = status_of(
        order("action_required", fo("accepted"), attention_reason="S1 cannot serve 1 x A", action_options=options)
    )
    assert (s.code, s.text, s.options, s.location) == (
        "action_needed",
        "Action needed: S1 cannot serve 1 x A",
        options,
        MITTE,
    )
    attention = status_of(order("needs_attention", fo("accepted")))
    assert (attention.code, attention.text) == ("action_needed", "Action needed: please contact us about your order")
    paying = status_of(order("pending_payment", fo("pending")))
    assert (paying.code, paying.text) == ("action_needed", "Action needed: complete your payment")


def test_a_store_the_caller_did_not_hand_in_is_named_by_its_code() -> None:
    s = customer_status(order("in_progress", fo("accepted", location="S9"), pickup="S9"), {}, NOW)
    assert (s.text, s.location) == ("Being prepared at S9", None)


def test_the_english_sentences_come_from_the_catalogue(monkeypatch: pytest.MonkeyPatch) -> None:
    po = cs.LOCALE_DIR / "en" / "LC_MESSAGES" / "customer_status.po"
    with po.open("rb") as f:
        catalog = read_po(f, locale="en")
    assert catalog.get("status.confirmed").string == "Order confirmed"
    assert all(m.string for m in catalog if m.id), "every message has its English"
    # Another catalogue says other words: the code holds keys, never the English itself.
    for message in catalog:
        if message.id and not message.id.startswith("format."):
            message.string = f"[{message.string}]"
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    other = Translations(compiled, domain=cs.DOMAIN)
    monkeypatch.setattr(cs, "translations", lambda locale="en": other)
    s = customer_status(order("in_progress", fo("accepted")), STORES, NOW)
    assert s.text == "[Being prepared at Berlin Mitte]"


def test_an_unknown_locale_reads_english() -> None:
    s = customer_status(order("received", fo("pending")), STORES, NOW, locale="xx")
    assert s.text == "Order confirmed"
