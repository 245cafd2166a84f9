"""Stock at one location: what is on the shelf, what is promised, what is kept back."""

from __future__ import annotations

import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.inventory import model as inventory
from orchestrator.inventory.model import (
    MovementKind,
    StockPosition,
    check_new_on_hand,
    check_reason,
    find_shortfalls,
)
from orchestrator.inventory.schemas import StockAdjust
from orchestrator.platform.errors import Conflict, InvalidRequest, Shortfall, StockWouldGoNegative


def test_available_is_on_hand_less_reserved_less_safety_stock() -> None:
    assert StockPosition(on_hand=10, reserved=3, safety_stock=2).available == 5


def test_safety_stock_defaults_to_zero() -> None:
    assert StockPosition(on_hand=10, reserved=3).available == 7


@pytest.mark.parametrize(
    "position",
    [
        StockPosition(on_hand=2, reserved=5),
        StockPosition(on_hand=4, reserved=2, safety_stock=3),
        StockPosition(on_hand=0, reserved=0, safety_stock=1),
        StockPosition(on_hand=-3, reserved=0),
    ],
)
def test_available_never_goes_below_zero(position: StockPosition) -> None:
    assert position.available == 0
    assert not position.can_reserve(1)


def test_can_reserve_up_to_and_including_what_is_available() -> None:
    position = StockPosition(on_hand=10, reserved=3, safety_stock=2)
    assert position.can_reserve(4)
    assert position.can_reserve(5)
    assert not position.can_reserve(6)


def test_safety_stock_is_never_reserved() -> None:
    position = StockPosition(on_hand=5, reserved=0, safety_stock=5)
    assert position.available == 0
    assert not position.can_reserve(1)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(min_value=0, max_value=1000),
    st.integers(min_value=0, max_value=1000),
    st.integers(min_value=0, max_value=100),
    st.integers(min_value=1, max_value=1000),
)
def test_property_can_reserve_exactly_when_the_reservation_leaves_safety_stock_untouched(
    on_hand: int, reserved: int, safety: int, quantity: int
) -> None:
    position = StockPosition(on_hand, reserved, safety)
    assert position.available >= 0
    assert position.can_reserve(quantity) == (on_hand - reserved - quantity >= safety)


def test_find_shortfalls_is_empty_when_everything_can_be_reserved() -> None:
    positions = {(1, 10): StockPosition(5, 0), (2, 20): StockPosition(3, 1)}
    assert find_shortfalls(positions, {(1, 10): 5, (2, 20): 2}, {10: "A", 20: "B"}) == []


def test_find_shortfalls_collects_every_short_key_in_one_pass() -> None:
    positions = {
        (1, 10): StockPosition(on_hand=5, reserved=4),
        (1, 20): StockPosition(on_hand=9, reserved=0),
        (2, 10): StockPosition(on_hand=3, reserved=0, safety_stock=2),
    }
    wanted = {(2, 10): 2, (1, 20): 9, (1, 10): 3}
    short = find_shortfalls(positions, wanted, {10: "SKU-A", 20: "SKU-B"})
    assert short == [
        Shortfall(sku="SKU-A", requested=3, available=1),
        Shortfall(sku="SKU-A", requested=2, available=1),
    ]


def test_find_shortfalls_reports_in_canonical_key_order() -> None:
    positions: dict = {}
    wanted = {(3, 1): 1, (1, 2): 1, (2, 1): 1, (1, 1): 1}
    short = find_shortfalls(positions, wanted, {1: "A", 2: "B"})
    assert [(s.sku, s.requested) for s in short] == [("A", 1), ("B", 1), ("A", 1), ("A", 1)]
    assert len(short) == 4


def test_a_key_with_no_stock_row_is_short_with_nothing_available() -> None:
    short = find_shortfalls({}, {(1, 10): 2}, {10: "A"})
    assert short == [Shortfall("A", 2, 0)]


def test_find_shortfalls_reports_available_floored_at_zero() -> None:
    short = find_shortfalls({(1, 10): StockPosition(1, 4)}, {(1, 10): 1}, {10: "A"})
    assert short == [Shortfall("A", 1, 0)]


def test_a_new_on_hand_may_not_be_negative() -> None:
    with pytest.raises(StockWouldGoNegative) as caught:
        check_new_on_hand(-1, 0)
    assert caught.value.context["on_hand"] == -1
    assert isinstance(caught.value, Conflict)


def test_a_new_on_hand_may_not_fall_below_what_is_reserved() -> None:
    with pytest.raises(StockWouldGoNegative) as caught:
        check_new_on_hand(4, 5)
    assert caught.value.context == {"on_hand": 4, "reserved": 5}
    assert "5" in caught.value.detail and "4" in caught.value.detail


@pytest.mark.parametrize("on_hand, reserved", [(0, 0), (5, 5), (6, 5), (100, 0)])
def test_a_new_on_hand_at_or_above_reserved_is_accepted(on_hand: int, reserved: int) -> None:
    assert check_new_on_hand(on_hand, reserved) is None


def test_a_new_on_hand_above_the_maximum_is_refused_as_invalid() -> None:
    limit = inventory.MAX_ON_HAND
    check_new_on_hand(limit, 0)
    with pytest.raises(InvalidRequest):
        check_new_on_hand(limit + 1, 0)


def test_a_stock_change_reason_is_trimmed() -> None:
    assert check_reason("  cycle count aisle 4 \n") == "cycle count aisle 4"


@pytest.mark.parametrize("reason", ["", "   ", "\t\n"])
def test_a_stock_change_needs_a_reason(reason: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_reason(reason)
    assert caught.value.field == "reason"


def test_every_kind_the_adjustments_api_accepts_is_a_ledger_movement_kind() -> None:
    # The API turns the body's kind into a MovementKind; one the enum lacks would be a 500.
    accepted = typing.get_args(typing.get_type_hints(StockAdjust)["kind"])
    assert accepted, "StockAdjust.kind is no longer a Literal"
    for kind in accepted:
        assert MovementKind(kind).value == kind
