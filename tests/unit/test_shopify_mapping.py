"""Shopify order JSON → the canonical command (``connectors/shopify/mapping.py``), on Shopify's own
example payloads (tests/fixtures/shopify/SOURCES) and on anything at all (hypothesis)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.shopify import mapping
from connectors.shopify.signature import signature_of, signed_by
from orchestrator.order_record.states import Method

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "shopify"
MAPS = mapping.Maps(
    "marketplace:shopify", {"905684977": "S1", "Store 2": "S2"}, {"IPOD2008GREEN": "A", "IPOD2008RED": "B"}
)


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def mapped(payload: object, maps: mapping.Maps = MAPS) -> mapping.MappedOrder:
    result = mapping.map_order(payload, maps)
    assert isinstance(result, mapping.MappedOrder), result
    return result


def test_the_documentation_order_maps_to_a_shipped_order_paid_by_the_marketplace():
    result = mapped(fixture("order.json"), mapping.Maps("marketplace:shopify", {}, {}))
    cmd = result.command
    assert cmd.channel == "marketplace:shopify" and cmd.channel_order_ref == "450789469"
    assert cmd.currency == "USD" and cmd.method is Method.SHIP and cmd.location is None
    assert [(ln.sku, ln.quantity, ln.unit_price) for ln in cmd.lines] == [
        ("IPOD2008GREEN", 1, 19900),
        ("IPOD2008RED", 1, 19900),
        ("IPOD2008BLACK", 1, 19900),
    ]
    assert (cmd.shipping_total, cmd.tax_total, cmd.discount_total) == (0, 1194, 0)
    assert cmd.customer.email == "bob.norman@hostmail.com"
    assert cmd.customer.name == "Bob Norman" and cmd.customer.account == "shopify:207119551"
    assert cmd.address == {
        "name": "Bob Norman",
        "line1": "Chestnut Street 92",
        "city": "Louisville",
        "region": "KY",
        "postal_code": "40202",
        "country": "US",
        "lat": 45.41634,
        "lon": -75.6868,
    }
    assert result.payment.provider == "marketplace" and result.payment.reference == "450789469"
    assert result.updated_at is not None and result.updated_at.isoformat() == "2008-01-10T11:00:00-05:00"


def test_the_sku_map_translates_and_an_unknown_sku_passes_as_it_is():
    cmd = mapped(fixture("order.json")).command
    assert [ln.sku for ln in cmd.lines] == ["A", "B", "IPOD2008BLACK"]


def test_a_local_pickup_line_is_a_pickup_at_the_mapped_location():
    cmd = mapped(fixture("order_local_pickup.json")).command
    assert cmd.method is Method.PICKUP and cmd.location == "S1" and cmd.address is None


def test_a_pickup_line_titled_with_a_mapped_location_name_is_a_pickup_there():
    order = fixture("order.json")
    order["shipping_lines"] = [{"code": "Store 2", "title": "Store 2", "price": "0.00", "source": "shopify"}]
    cmd = mapped(order).command
    assert (cmd.method, cmd.location) == (Method.PICKUP, "S2")


def test_a_pickup_at_an_unmapped_location_names_it():
    order = fixture("order_local_pickup.json")
    order["location_id"] = 111
    result = mapping.map_order(order, MAPS)
    assert result == mapping.Unmapped("450789470", ("location:111",))


def test_a_line_without_sku_is_unmapped_naming_the_line():
    order = fixture("order.json")
    order["line_items"][1]["sku"] = ""
    result = mapping.map_order(order, MAPS)
    assert isinstance(result, mapping.Unmapped) and result.missing == ("sku:(none on line item 518995019)",)


def test_yen_has_no_minor_digits_and_prices_that_include_tax_add_none():
    cmd = mapped(fixture("order_jpy_taxes_included.json")).command
    assert cmd.currency == "JPY" and {ln.unit_price for ln in cmd.lines} == {19900}
    assert (cmd.shipping_total, cmd.tax_total, cmd.discount_total) == (800, 0, 1000)


@pytest.mark.parametrize(
    ("currency", "price", "minor"),
    [
        ("USD", "199.00", 19900),
        ("USD", "0.5", 50),
        ("JPY", "1000", 1000),
        ("JPY", "1000.00", 1000),
        ("BHD", "1.005", 1005),
        ("KWD", "12", 12000),
        ("EUR", "7", 700),
    ],
)
def test_prices_become_minor_units_by_the_currency_exponent(currency, price, minor):
    order = fixture("order.json")
    order |= {"currency": currency, "total_tax": "0"}
    order["line_items"] = [{**order["line_items"][0], "price": price}]
    assert mapped(order).command.lines[0].unit_price == minor


@pytest.mark.parametrize(("currency", "price"), [("USD", "1.005"), ("JPY", "100.5"), ("EUR", "-1.00"), ("USD", "1e3")])
def test_a_price_more_precise_than_its_currency_or_not_a_decimal_is_refused(currency, price):
    order = fixture("order.json")
    order["currency"] = currency
    order["line_items"][0]["price"] = price
    with pytest.raises(mapping.MappingError):
        mapping.map_order(order, MAPS)


@pytest.mark.parametrize(
    "breaking",
    [
        lambda o: o.pop("id"),
        lambda o: o.update(currency="XXX"),
        lambda o: o.update(line_items=[]),
        lambda o: o["line_items"][0].update(quantity=0),
        lambda o: o["line_items"][0].update(quantity="1"),
        lambda o: o["line_items"][0].pop("price"),
        lambda o: o.update(shipping_lines="free"),
        lambda o: o.pop("shipping_address"),
        lambda o: o.update(updated_at="yesterday"),
    ],
)
def test_a_malformed_order_is_a_mapping_error(breaking):
    order = fixture("order.json")
    breaking(order)
    with pytest.raises(mapping.MappingError):
        mapping.map_order(order, MAPS)


def test_the_rest_api_wrapper_is_read_too():
    assert mapped({"order": fixture("order.json")}).command.channel_order_ref == "450789469"


def test_a_refund_says_what_went_back():
    refund = mapping.read_refund(fixture("refund.json"))
    assert (refund.refund_id, refund.order_ref, refund.amounts) == ("509562969", "450789469", {"USD": "209.00"})
    assert refund.lines == (("IPOD2008BLACK", 1), ("IPOD2008GREEN", 1))


def test_order_ref_reads_the_version_and_the_cancel_reason():
    order = fixture("order.json") | {"cancel_reason": "customer", "updated_at": "2008-01-11T09:00:00Z"}
    ref = mapping.order_ref(order)
    assert ref.order_ref == "450789469" and ref.cancel_reason == "customer"
    assert ref.updated_at is not None and ref.updated_at.isoformat() == "2008-01-11T09:00:00+00:00"


def test_the_signature_is_the_base64_hmac_of_the_raw_body():
    body = (FIXTURES / "order.json").read_bytes()
    good = signature_of(body, "s3cret")
    assert signed_by(body, good, "s3cret")
    assert not signed_by(body + b" ", good, "s3cret")
    assert not signed_by(body, good, "other")
    assert not signed_by(body, None, "s3cret") and not signed_by(body, "", "s3cret")
    assert not signed_by(body, "ünïcode", "s3cret")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)


def _order_like():
    """Orders with any field swapped for any JSON: the mapping's edges, not just random noise."""
    keys = [
        "id",
        "currency",
        "line_items",
        "shipping_lines",
        "shipping_address",
        "customer",
        "total_tax",
        "total_discounts",
        "updated_at",
        "location_id",
        "taxes_included",
    ]
    return st.builds(
        lambda key, value, line_key, line_value: _swapped(key, value, line_key, line_value),
        st.sampled_from(keys),
        JSON,
        st.sampled_from(["sku", "price", "quantity", "id"]),
        JSON,
    )


def _swapped(key, value, line_key, line_value):
    order = copy.deepcopy(fixture("order.json"))
    order[key] = value
    if isinstance(order.get("line_items"), list) and order["line_items"] and isinstance(order["line_items"][0], dict):
        order["line_items"][0][line_key] = line_value
    return order


@settings(max_examples=400, deadline=None)
@given(st.one_of(JSON, _order_like()))
def test_any_json_maps_or_is_a_mapping_error(payload):
    for read in (lambda p: mapping.map_order(p, MAPS), mapping.order_ref, mapping.read_refund):
        try:
            result = read(payload)
        except mapping.MappingError:
            continue
        assert result is not None
