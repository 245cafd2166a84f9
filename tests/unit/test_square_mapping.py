"""Square events and orders → the canonical command (``connectors/square/mapping.py``) and Square's
webhook signature, on Square's own examples (tests/fixtures/square/SOURCES) and on anything at
all (hypothesis)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.square import events, mapping
from connectors.square.signature import signature_of, signed_by
from orchestrator.order_record.states import Method

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "square"
SKUS = {"catalog_object_id5": "ITEM-1", "catalog_object_id6": "ITEM-2"}
MAPS = mapping.Maps("pos:square", {"FPYCBCHYMXFK1": "S1"}, SKUS)


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def mapped(payload: object, maps: mapping.Maps = MAPS) -> mapping.MappedOrder:
    result = mapping.map_order(payload, maps)
    assert isinstance(result, mapping.MappedOrder), result
    return result


# Square's own test vector (square-python-sdk tests/utilities/test_webhooks_helper.py).
SDK_BODY = (
    b'{"merchant_id":"MLEFBHHSJGVHD","type":"webhooks.test_notification","event_id":"ac3ac95b-f97d-458c-a6e6-'
    b'18981597e05f","created_at":"2022-07-13T20:30:59.037339943Z","data":{"type":"webhooks","id":"bc368e64-01aa-'
    b'407e-b46e-3231809b1129"}}'
)
SDK_SIGNATURE = "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4="
SDK_KEY = "Ibxx_5AKakO-3qeNVR61Dw"
SDK_URL = "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9"


def test_the_signature_is_squares_own_test_vector():
    assert signature_of(SDK_URL, SDK_BODY, SDK_KEY) == SDK_SIGNATURE
    assert signed_by(SDK_URL, SDK_BODY, SDK_SIGNATURE, SDK_KEY)
    assert not signed_by("https://webhook.site/79a4f3a-dcfa-49ee-bac5-9d0edad886b9", SDK_BODY, SDK_SIGNATURE, SDK_KEY)
    assert not signed_by(SDK_URL, SDK_BODY, SDK_SIGNATURE, "MCmhFRxGX82xMwg5FsaoQA")
    assert not signed_by(SDK_URL, SDK_BODY, "1z2n3DEJJiUPKcPzQo1ftvbxGdw=", SDK_KEY)
    assert not signed_by(SDK_URL, SDK_BODY.replace(b"2022-07", b"2022-06"), SDK_SIGNATURE, SDK_KEY)
    assert not signed_by(SDK_URL, SDK_BODY, None, SDK_KEY) and not signed_by(SDK_URL, SDK_BODY, "", SDK_KEY)


def test_the_documentation_events_are_read():
    created = events.read_event(fixture("order_created.json"))
    assert (created.event_id, created.type, created.order_id) == (
        "116038d3-2948-439f-8679-fc86dbf80f69",
        "order.created",
        "eA3vssLHKJrv9H0IdJCM3gNqfdcZY",
    )
    assert (created.state, created.version, created.order) == ("OPEN", 1, None)
    updated = events.read_event(fixture("order_updated.json"))
    assert (updated.version, updated.updated_at.isoformat()) == (2, "2020-04-16T23:14:26.359000+00:00")
    assert events.read_event(fixture("order_fulfillment_updated.json")).version == 6
    payment = events.read_event(fixture("payment_updated.json")).payment
    assert payment == events.Payment(
        "hYy9pRFVxpDsO1FB05SunFWUe9JZY", "eA3vssLHKJrv9H0IdJCM3gNqfdcZY", "COMPLETED", 550, "USD"
    )


def test_an_event_carrying_the_order_inline_is_read_with_it():
    event = fixture("order_updated.json")
    event["data"]["object"] = {"order": fixture("order_pickup.json")["order"]}
    read = events.read_event(event)
    assert read.order is not None and read.order_id == "eA3vssLHKJrv9H0IdJCM3gNqfdcZY" and read.version == 1


def test_a_pickup_order_is_a_pickup_at_the_mapped_store_paid_by_square():
    result = mapped(fixture("order_pickup.json"))
    cmd = result.command
    assert cmd.channel_order_ref == "eA3vssLHKJrv9H0IdJCM3gNqfdcZY" and cmd.currency == "USD"
    assert (cmd.method, cmd.location, cmd.address) == (Method.PICKUP, "S1", None)
    assert [(ln.sku, ln.quantity, ln.unit_price) for ln in cmd.lines] == [("ITEM-1", 1, 500), ("ITEM-2", 2, 300)]
    assert (cmd.tax_total, cmd.discount_total, cmd.shipping_total) == (0, 550, 0)
    assert cmd.customer.name == "Jaiden Urie" and cmd.customer.email == "jaiden.urie@example.com"
    assert cmd.customer.phone == "+1 (650) 555-0123" and cmd.customer.account == "square:QPTXM8PQNX3Q726ZYHPMNP46XC"
    assert (result.payment.provider, result.payment.reference) == ("marketplace", "eA3vssLHKJrv9H0IdJCM3gNqfdcZY")
    assert (result.state, result.version) == ("OPEN", 1)


def test_a_shipment_ships_to_the_recipients_address():
    cmd = mapped(fixture("order_shipment.json")).command
    assert (cmd.method, cmd.location) == (Method.SHIP, None)
    assert cmd.address == {
        "name": "Jaiden Urie",
        "line1": "1955 Broadway",
        "line2": "Suite 600",
        "city": "Oakland",
        "region": "CA",
        "postal_code": "94612",
        "country": "US",
    }


def test_an_order_without_a_fulfillment_is_an_in_store_sale():
    sale = mapping.map_order(fixture("order_completed_in_store.json"), MAPS)
    assert sale == mapping.InStoreSale("bX2ZiGfR4Pq8qo8X1c1PnA0TeD4F", "COMPLETED", "S1")
    # The SDK's RetrieveOrder example: an open ticket at an unmapped location, no fulfillment.
    assert mapping.map_order(fixture("retrieve_order.json"), MAPS) == mapping.InStoreSale(
        "CAISENgvlJ6jLWAzERDzjyHVybY", "OPEN", None
    )


def test_unknown_skus_and_locations_are_named_not_dropped():
    order = fixture("order_pickup.json")
    result = mapping.map_order(order, mapping.Maps("pos:square", {}, {"catalog_object_id5": "ITEM-1"}))
    # catalog_object_id6 is taken as it is (intake names it if we do not sell it); the store is not mapped.
    assert result == mapping.Unmapped("eA3vssLHKJrv9H0IdJCM3gNqfdcZY", ("location:FPYCBCHYMXFK1",))
    del order["order"]["line_items"][1]["catalog_object_id"]
    result = mapping.map_order(order, mapping.Maps("pos:square", {"FPYCBCHYMXFK1": "S1"}, {}))
    assert result.missing == ("sku:Item 2",)  # an ad-hoc item: its name, and a name is not a sku


def test_an_item_without_catalog_id_maps_by_its_name_and_variation():
    order = fixture("order_pickup.json")
    for item in order["order"]["line_items"]:
        del item["catalog_object_id"]
    order["order"]["line_items"][0]["variation_name"] = "Large"
    maps = mapping.Maps("pos:square", {"FPYCBCHYMXFK1": "S1"}, {"Item 1 Large": "ITEM-1L", "Item 2": "ITEM-2"})
    assert [ln.sku for ln in mapped(order, maps).command.lines] == ["ITEM-1L", "ITEM-2"]


def test_inclusive_taxes_are_not_added_again():
    order = fixture("order_pickup.json")
    order["order"]["total_tax_money"] = {"amount": 90, "currency": "USD"}
    order["order"]["taxes"] = [
        {"uid": "a", "type": "ADDITIVE", "applied_money": {"amount": 60, "currency": "USD"}},
        {"uid": "b", "type": "INCLUSIVE", "applied_money": {"amount": 30, "currency": "USD"}},
    ]
    assert mapped(order).command.tax_total == 60


@pytest.mark.parametrize(
    "spoil",
    [
        lambda o: o.update(line_items=[]),
        lambda o: o["line_items"][0].update(quantity="1.5"),  # a weighed quantity
        lambda o: o["line_items"][0].update(quantity=1),  # Square sends strings
        lambda o: o["line_items"][0].update(base_price_money={"amount": 500, "currency": "EUR"}),
        lambda o: o["line_items"][0].pop("base_price_money"),
        lambda o: o.update(total_money={"amount": 1, "currency": "XXXX"}),
        lambda o: o["fulfillments"][0].update(type="DIGITAL"),
        lambda o: o["fulfillments"][0].update(state="CANCELED"),
        lambda o: o.update(id="../../v2/payments"),
    ],
)
def test_what_is_not_a_readable_order_is_a_mapping_error(spoil):
    order = copy.deepcopy(fixture("order_pickup.json")["order"])
    spoil(order)
    with pytest.raises(mapping.MappingError):
        mapping.map_order(order, MAPS)


def test_a_shipment_without_an_address_is_a_mapping_error():
    order = fixture("order_shipment.json")
    del order["order"]["fulfillments"][0]["shipment_details"]["recipient"]["address"]
    with pytest.raises(mapping.MappingError, match="no recipient address"):
        mapping.map_order(order, MAPS)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=25,
)
ORDER_KEYS = [
    "id",
    "state",
    "location_id",
    "line_items",
    "fulfillments",
    "total_money",
    "total_tax_money",
    "total_discount_money",
    "total_service_charge_money",
    "taxes",
    "customer_id",
    "version",
    "updated_at",
]


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(ORDER_KEYS), json_values, max_size=8) | json_values)
def test_any_input_maps_or_is_a_mapping_error(payload):
    try:
        result = mapping.map_order(payload, MAPS)
    except mapping.MappingError:
        return
    assert isinstance(result, (mapping.MappedOrder, mapping.InStoreSale, mapping.Unmapped))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_fixture_with_any_field_spoiled_maps_or_is_a_mapping_error(data):
    order = copy.deepcopy(fixture(data.draw(st.sampled_from(["order_pickup.json", "order_shipment.json"])))["order"])
    target = order
    path = data.draw(
        st.lists(
            st.sampled_from(
                [
                    "line_items",
                    "fulfillments",
                    0,
                    "pickup_details",
                    "recipient",
                    "base_price_money",
                    "quantity",
                    "amount",
                    "shipment_details",
                    "address",
                    "catalog_object_id",
                    "total_tax_money",
                ]
            ),
            max_size=4,
        )
    )
    for key in path:
        if isinstance(target, dict) and isinstance(key, str) and isinstance(target.get(key), (dict, list)):
            target = target[key]
        elif isinstance(target, list) and isinstance(key, int) and target:
            target = target[0]
    if isinstance(target, dict) and target:
        target[data.draw(st.sampled_from(sorted(target)))] = data.draw(json_values)
    try:
        result = mapping.map_order(order, MAPS)
    except mapping.MappingError:
        return
    assert isinstance(result, (mapping.MappedOrder, mapping.InStoreSale, mapping.Unmapped))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["event_id", "type", "data", "merchant_id"]), json_values) | json_values)
def test_any_event_reads_or_is_a_mapping_error(payload):
    try:
        event = events.read_event(payload)
    except mapping.MappingError:
        return
    assert isinstance(event, events.Event)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_documentation_event_with_a_field_spoiled_reads_or_is_a_mapping_error(data):
    names = ["order_created.json", "order_updated.json", "order_fulfillment_updated.json", "payment_updated.json"]
    payload = fixture(data.draw(st.sampled_from(names)))
    target = payload
    while isinstance(target, dict) and target and data.draw(st.booleans()):
        child = target[data.draw(st.sampled_from(sorted(target)))]
        if not isinstance(child, dict) or not child:
            break
        target = child
    target[data.draw(st.sampled_from(sorted(target)))] = data.draw(json_values)
    try:
        event = events.read_event(payload)
    except mapping.MappingError:
        return
    assert isinstance(event, events.Event)
