"""Amazon's SP-API orders (tests/fixtures/amazon, from Amazon's Orders API v0 model) → the canonical
order command; any input gives a command, an Unmapped or a MappingError, never anything else."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.amazon.mapping import MappedOrder, MappingError, Maps, Unmapped, map_order, read_head
from orchestrator.order_record.states import Method

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "amazon"
MAPS = Maps("marketplace:amazon", {"ISPU_StoreId": "S1"}, {})


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())["payload"]


def example_order(**changes) -> dict:
    return fixture("get_orders_example.json")["Orders"][0] | {"OrderStatus": "Unshipped", **changes}


def sandbox_items(**changes) -> list[dict]:
    items = copy.deepcopy(fixture("get_order_items_sandbox_200.json")["OrderItems"])
    return [i | changes for i in items]


def test_amazons_example_order_with_its_sandbox_item_maps_to_a_shipment_paid_by_the_marketplace():
    mapped = map_order({"Order": example_order(), "OrderItems": sandbox_items()}, MAPS)
    assert isinstance(mapped, MappedOrder)
    cmd = mapped.command
    assert (cmd.channel_order_ref, cmd.currency, cmd.method) == ("902-3159896-1390916", "USD", Method.SHIP)
    assert [(ln.sku, ln.quantity, ln.unit_price) for ln in cmd.lines] == [("NABetaASINB00551Q3CS", 1, 1000)]
    assert (cmd.tax_total, cmd.shipping_total, cmd.discount_total) == (101, 0, 0)
    assert cmd.address == {
        "name": "Michigan address",
        "line1": "1 Cross St.",
        "city": "Canton",
        "region": "MI",
        "postal_code": "48817",
        "country": "US",
    }
    assert (cmd.customer.email, cmd.customer.name, cmd.customer.account) == (
        "user@example.com",
        "John Doe",
        "amazon:user@example.com",
    )
    assert (mapped.payment.provider, mapped.payment.reference) == ("marketplace", "902-3159896-1390916")


def test_the_sandbox_items_cancel_request_is_read():
    head = read_head({"Order": example_order(), "OrderItems": sandbox_items()})
    assert head.cancel_requested == "Found cheaper somewhere else."
    assert read_head({"Order": example_order()}).cancel_requested is None


def test_an_ispu_order_is_a_pickup_at_the_store_its_store_chain_id_maps_to():
    mapped = map_order({"Order": example_order(IsISPU=True), "OrderItems": sandbox_items()}, MAPS)
    assert isinstance(mapped, MappedOrder)
    assert (mapped.command.method, mapped.command.location, mapped.command.address) == (Method.PICKUP, "S1", None)
    unmapped = map_order({"Order": example_order(IsISPU=True), "OrderItems": sandbox_items()}, Maps("c", {}, {}))
    assert unmapped == Unmapped("902-3159896-1390916", ("location:ISPU_StoreId",))


def test_the_sku_map_translates_and_an_item_without_a_seller_sku_is_unmapped():
    # A SellerSKU the map lacks is taken as it is: intake knows our catalogue (unmapped there).
    items = sandbox_items(SellerSKU="AMZ-1")
    assert map_order({"Order": example_order(), "OrderItems": items}, MAPS).command.lines[0].sku == "AMZ-1"
    no_sku = sandbox_items(SellerSKU=None)
    assert map_order({"Order": example_order(), "OrderItems": no_sku}, MAPS).missing == (
        "sku:(none on item 05015851154158)",
    )
    mapped = map_order({"Order": example_order(), "OrderItems": items}, Maps("c", {}, {"AMZ-1": "OURS"}))
    assert mapped.command.lines[0].sku == "OURS"


def test_a_line_total_the_quantity_does_not_divide_keeps_amazons_total():
    items = sandbox_items(QuantityOrdered=3)  # ItemPrice 10.00 for three
    cmd = map_order({"Order": example_order(), "OrderItems": items}, MAPS).command
    line = cmd.lines[0]
    assert (line.quantity, line.unit_price, cmd.discount_total) == (3, 334, 2)
    assert line.quantity * line.unit_price - cmd.discount_total == 1000


@pytest.mark.parametrize(
    ("body", "words"),
    [
        # Amazon's sandbox orders come without ShippingAddress (it takes a Restricted Data Token).
        (
            {"Order": fixture("get_orders_sandbox_200.json")["Orders"][0], "OrderItems": sandbox_items()},
            "ShippingAddress",
        ),
        # Amazon's documented example prices JPY with decimals: refused, never rounded.
        ({"Order": example_order(), "OrderItems": fixture("get_order_items_example.json")["OrderItems"]}, "JPY"),
        ({"Order": example_order()}, "no items"),
        ({"Order": example_order(AmazonOrderId=None), "OrderItems": sandbox_items()}, "AmazonOrderId"),
        ({"Order": example_order(LastUpdateDate="yesterday"), "OrderItems": sandbox_items()}, "LastUpdateDate"),
        (
            {
                "Order": example_order(),
                "OrderItems": sandbox_items(
                    ItemPrice={"CurrencyCode": "EUR", "Amount": "1"}, ItemTax={"CurrencyCode": "USD", "Amount": "1"}
                ),
            },
            "USD",
        ),
        ({"Orders": []}, "Order"),
    ],
)
def test_what_is_not_an_order_it_can_read_is_a_mapping_error(body, words):
    with pytest.raises(MappingError, match=words):
        map_order(body, MAPS)


def test_every_fixture_order_reads_its_head():
    for name in ("get_orders_example.json", "get_orders_sandbox_200.json"):
        for order in fixture(name)["Orders"]:
            head = read_head({"Order": order})
            assert head.order_ref == order["AmazonOrderId"] and head.status == order["OrderStatus"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
money = st.fixed_dictionaries(
    {
        "CurrencyCode": st.sampled_from(["USD", "JPY", "XXX", "usd", ""]),
        "Amount": st.one_of(st.text(max_size=8), st.from_regex(r"-?\d{1,4}(\.\d{1,3})?", fullmatch=True)),
    }
)
items = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "SellerSKU": st.one_of(st.text(max_size=10), json_values),
            "QuantityOrdered": st.one_of(st.integers(-2, 5), json_values),
            "ItemPrice": st.one_of(money, json_values),
            "ItemTax": money,
            "StoreChainStoreId": st.one_of(st.just("ISPU_StoreId"), st.text(max_size=5)),
            "BuyerRequestedCancel": json_values,
        },
    ),
    max_size=4,
)
orders = st.fixed_dictionaries(
    {},
    optional={
        "AmazonOrderId": st.one_of(st.just("902-3159896-1390916"), json_values),
        "LastUpdateDate": st.one_of(st.just("2017-01-20T19:49:35Z"), json_values),
        "OrderStatus": st.one_of(st.sampled_from(["Unshipped", "Canceled", "Pending"]), json_values),
        "IsISPU": json_values,
        "ShippingAddress": st.one_of(st.just({"City": "Canton"}), json_values),
        "BuyerInfo": json_values,
    },
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(json_values, st.fixed_dictionaries({"Order": orders, "OrderItems": st.one_of(items, json_values)})))
def test_any_input_maps_or_says_why_not(body):
    for step in (lambda: map_order(body, MAPS), lambda: read_head(body)):
        try:
            result = step()
        except MappingError:
            continue
        assert result is not None
        if isinstance(result, MappedOrder):
            assert result.command.lines and all(ln.quantity > 0 and ln.unit_price >= 0 for ln in result.command.lines)
