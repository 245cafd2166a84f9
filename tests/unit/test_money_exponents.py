"""Currencies' minor-unit exponents (ISO 4217), Stripe's amounts for them, and an order's totals."""

from __future__ import annotations

import pytest

from orchestrator.platform import money
from orchestrator.platform.errors import InvalidRequest
from orchestrator.platform.money import (
    ISO_4217,
    STRIPE_ZERO_DECIMAL,
    UnchargeableAmount,
    check_totals,
    minor_unit_exponent,
    to_stripe_amount,
)


@pytest.mark.parametrize(
    ("code", "exponent"),
    [("USD", 2), ("EUR", 2), ("jpy", 0), ("KRW", 0), ("CLP", 0), ("ISK", 0), ("UGX", 0), ("VND", 0)]
    + [("BHD", 3), ("KWD", 3), ("JOD", 3), ("OMR", 3), ("TND", 3), ("IQD", 3), ("LYD", 3), ("HUF", 2)],
)
def test_each_currency_has_its_iso_minor_unit_exponent(code: str, exponent: int) -> None:
    assert minor_unit_exponent(code) == exponent


def test_every_currency_has_an_exponent_and_only_the_iso_zero_and_three_digit_ones_differ_from_two() -> None:
    assert set(money.MINOR_UNIT_EXPONENTS) == ISO_4217
    zero = {c for c, e in money.MINOR_UNIT_EXPONENTS.items() if e == 0}
    three = {c for c, e in money.MINOR_UNIT_EXPONENTS.items() if e == 3}
    assert zero == {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV"} | {
        "XAF",
        "XOF",
        "XPF",
    }
    assert three == {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"}
    assert set(money.MINOR_UNIT_EXPONENTS.values()) == {0, 2, 3}


def test_stripe_takes_most_amounts_as_they_are() -> None:
    assert to_stripe_amount(1999, "USD") == 1999
    assert to_stripe_amount(1500, "jpy") == 1500  # zero-decimal on both sides: 1500 yen
    assert to_stripe_amount(1045, "HUF") == 1045  # HUF and TWD: zero-decimal for payouts only
    assert to_stripe_amount(1045, "TWD") == 1045
    assert to_stripe_amount(5120, "KWD") == 5120  # 5.120 KWD
    assert {"JPY", "KRW", "CLP", "VND", "XOF", "MGA"} <= STRIPE_ZERO_DECIMAL


def test_stripe_wants_isk_and_ugx_as_two_decimal_amounts_ending_in_00() -> None:
    assert to_stripe_amount(5, "ISK") == 500
    assert to_stripe_amount(5, "UGX") == 500


def test_stripe_takes_whole_ariary_only() -> None:
    assert to_stripe_amount(1200, "MGA") == 12  # 12.00 MGA in ISO minor units; Stripe's MGA is whole
    with pytest.raises(UnchargeableAmount):
        to_stripe_amount(1250, "MGA")


def test_stripe_wants_the_last_digit_of_a_three_decimal_amount_to_be_zero() -> None:
    with pytest.raises(UnchargeableAmount):
        to_stripe_amount(5125, "BHD")
    with pytest.raises(UnchargeableAmount):
        to_stripe_amount(-1, "USD")


def test_an_orders_total_adds_shipping_and_tax_and_takes_off_the_discount() -> None:
    totals = check_totals(1000, 250, 80, 330)
    assert totals.total == 1000
    assert totals.fields() == {
        "subtotal": 1000,
        "shipping_total": 250,
        "tax_total": 80,
        "discount_total": 330,
        "total": 1000,
    }
    assert check_totals(1000, 250, 80, 1330).total == 0  # the discount may take everything off


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((1000, 250, 80, 1331), "discount_total"),
        ((1000, -1, 0, 0), "shipping_total"),
        ((1000, 0, -1, 0), "tax_total"),
        ((1000, 0, 0, -1), "discount_total"),
        ((money.MAX_SUBTOTAL, 1, 0, 1), "lines"),
    ],
)
def test_totals_that_cannot_be_are_a_422(args: tuple[int, int, int, int], field: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        check_totals(*args)
    assert raised.value.field == field
