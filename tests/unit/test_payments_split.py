"""The split rule (``payments/model.py``): captures follow the goods, and shipping, tax and
discount follow them in proportion to their value."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.payments.model import GoodsLine, capture_amount, due_for, goods_value
from orchestrator.platform.money import OrderTotals

lines = st.lists(st.builds(GoodsLine, st.integers(1, 50), st.integers(0, 10**9)), min_size=1, max_size=8)


@st.composite
def orders_and_splits(draw: st.DrawFn) -> tuple[OrderTotals, list[list[GoodsLine]]]:
    """An order (lines, shipping, tax, a discount within what it is taken off) and its units
    split into captures of any size, in any order."""
    order_lines = draw(lines)
    subtotal = goods_value(order_lines)
    shipping = draw(st.integers(0, 10**7))
    tax = draw(st.integers(0, 10**7))
    discount = draw(st.integers(0, subtotal + shipping + tax))
    units = [GoodsLine(1, line.unit_price) for line in order_lines for _ in range(line.quantity)]
    units = draw(st.permutations(units))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(units) - 1)), max_size=6)))
    parts = [units[a:b] for a, b in zip([0, *cuts], [*cuts, len(units)], strict=True) if units[a:b]]
    return OrderTotals(subtotal, shipping, tax, discount), parts


def captures(totals: OrderTotals, parts: list[list[GoodsLine]]) -> list[int]:
    done: list[GoodsLine] = []
    amounts = []
    for i, part in enumerate(parts):
        amounts.append(capture_amount(totals, part, done, closes_order=i == len(parts) - 1))
        done += part
    return amounts


@given(orders_and_splits())
def test_captures_over_any_split_add_up_to_exactly_the_total_when_everything_is_handed_over(case) -> None:
    totals, parts = case
    assert sum(captures(totals, parts)) == totals.total


@given(orders_and_splits())
def test_a_capture_is_never_negative_and_never_more_than_the_total(case) -> None:
    totals, parts = case
    for amount in captures(totals, parts):
        assert 0 <= amount <= totals.total


@given(orders_and_splits())
def test_each_capture_is_its_goods_share_of_the_total_within_one_minor_unit(case) -> None:
    totals, parts = case
    if totals.subtotal == 0:
        return
    for part, amount in zip(parts, captures(totals, parts), strict=True):
        exact = goods_value(part) * totals.total / totals.subtotal
        assert abs(amount - exact) < 1 + 1e-6 * max(1.0, exact)


@given(orders_and_splits(), st.data())
def test_goods_never_handed_over_are_not_charged_nor_their_share(case, data) -> None:
    """Stop after any capture (the rest cancelled): what was charged is the handed-over goods'
    share of the total, rounded down, never the cancelled goods' share."""
    totals, parts = case
    kept = data.draw(st.integers(1, len(parts)))
    charged = sum(captures(totals, parts[:kept]) if kept < len(parts) else captures(totals, parts))
    handed_over = sum(goods_value(p) for p in parts[:kept])
    if totals.subtotal:
        assert charged == handed_over * totals.total // totals.subtotal


def test_the_shares_by_hand_shipping_tax_and_discount_split_by_value() -> None:
    # Goods 60 + 40, shipping 10, tax 8, discount 5: total 113.
    totals = OrderTotals(subtotal=100, shipping_total=10, tax_total=8, discount_total=5)
    first = capture_amount(totals, [GoodsLine(3, 20)], [])
    last = capture_amount(totals, [GoodsLine(1, 40)], [GoodsLine(3, 20)], closes_order=True)
    assert (first, last) == (67, 46)  # 60 + 0.6 × 13 = 67.8 → 67; the last takes the rest
    # The 40 cancelled instead: 67 is all that is ever charged.
    assert due_for(totals, 60) == 67


def test_an_order_of_free_goods_charges_its_total_when_its_goods_close() -> None:
    totals = OrderTotals(subtotal=0, shipping_total=499)
    assert capture_amount(totals, [GoodsLine(1, 0)], []) == 0
    assert capture_amount(totals, [GoodsLine(1, 0)], [GoodsLine(1, 0)], closes_order=True) == 499


def test_goods_worth_more_than_the_order_are_refused() -> None:
    with pytest.raises(ValueError, match="not part of an order"):
        capture_amount(OrderTotals(subtotal=100), [GoodsLine(2, 60)], [])
