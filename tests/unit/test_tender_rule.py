"""The pay-in-store rule (``payments/tenders.py``): what a handover owes at the counter and whether
a tender settles it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.payments.model import due_for
from orchestrator.payments.tenders import Standing, Tender, Tendered, due_at_handover, settle, standing_of
from orchestrator.platform.errors import TenderExceedsDue, TenderInsufficient, TenderNotNeeded, TenderRequired
from orchestrator.platform.money import OrderTotals

TOTALS = OrderTotals(2997, 500, 101, 0)  # 3 × 9.99 + 5.00 shipping + 1.01 tax = 35.98


@pytest.mark.parametrize(
    ("payments", "standing"),
    [
        ([], Standing.NONE),
        ([("pos", "pending", False)], Standing.COUNTER),
        ([("pos", "partially_captured", False)], Standing.COUNTER),
        ([("stripe", "authorised", False)], Standing.CARD),
        ([("stripe", "partially_captured", False)], Standing.CARD),
        ([("stripe", "partially_captured", True)], Standing.COUNTER),  # the authorisation ran out
        ([("stripe", "voided", True)], Standing.COUNTER),
        ([("stripe", "voided", False)], Standing.COUNTER),  # released
        ([("stripe", "captured", False)], Standing.COUNTER),  # captured before expiry, the rest unpaid
        ([("stripe", "failed", False), ("stripe", "authorised", False)], Standing.CARD),  # a retry that held
        ([("stripe", "voided", True), ("stripe", "authorised", False)], Standing.CARD),  # paid again by card
        ([("stripe", "voided", True), ("pos", "partially_captured", False)], Standing.COUNTER),
        ([("marketplace", "captured", False)], Standing.COLLECTED),
    ],
)
def test_how_the_payments_stand(payments, standing):
    assert standing_of(payments) is standing


def test_a_partial_handover_owes_its_share_and_the_last_what_is_left():
    first = due_at_handover(TOTALS, value_after=999, closes=False, paid=0)
    assert first == 999 * 3598 // 2997 == 1199
    assert due_at_handover(TOTALS, value_after=2997, closes=True, paid=first) == 3598 - 1199
    # What a card captured before its authorisation ended counts as paid.
    assert due_at_handover(TOTALS, value_after=1998, closes=False, paid=1199) == 2398 - 1199


def test_nothing_is_owed_twice():
    assert due_at_handover(TOTALS, value_after=999, closes=False, paid=1199) == 0
    assert due_at_handover(TOTALS, value_after=999, closes=False, paid=5000) == 0


def test_goods_worth_nothing_owe_the_total_when_they_close_the_order():
    free = OrderTotals(0, 500, 0, 0)
    assert due_at_handover(free, value_after=0, closes=False, paid=0) == 0
    assert due_at_handover(free, value_after=0, closes=True, paid=0) == 500


def test_exact_tender_is_recorded_without_change():
    assert settle(Standing.COUNTER, 1199, Tender(1199, "card", "t-1")) == Tendered(1199, "card", "t-1", 0)


def test_more_cash_gives_change():
    assert settle(Standing.COUNTER, 1199, Tender(2000, "cash")) == Tendered(1199, "cash", None, 801)


@pytest.mark.parametrize("method", ["card", "other"])
def test_more_by_card_or_other_is_refused(method):
    with pytest.raises(TenderExceedsDue) as refused:
        settle(Standing.COUNTER, 1199, Tender(1200, method))
    assert refused.value.amount_due == 1199


def test_less_is_refused():
    with pytest.raises(TenderInsufficient) as refused:
        settle(Standing.COUNTER, 1199, Tender(1198, "cash"))
    assert refused.value.amount_due == 1199 and refused.value.field == "tender"


def test_a_counter_order_needs_a_tender_when_something_is_due():
    with pytest.raises(TenderRequired) as refused:
        settle(Standing.COUNTER, 1199, None)
    assert refused.value.amount_due == 1199
    assert settle(Standing.COUNTER, 0, None) is None


def test_an_order_without_payment_needs_none_but_a_tender_given_is_checked():
    assert settle(Standing.NONE, 2500, None) is None
    assert settle(Standing.NONE, 2500, Tender(2500, "cash")) == Tendered(2500, "cash", None, 0)
    with pytest.raises(TenderInsufficient):
        settle(Standing.NONE, 2500, Tender(100, "cash"))


@pytest.mark.parametrize("standing", [Standing.CARD, Standing.COLLECTED])
def test_a_tender_is_refused_where_the_payment_covers_the_goods(standing):
    assert settle(standing, 1199, None) is None
    with pytest.raises(TenderNotNeeded):
        settle(standing, 1199, Tender(1199, "cash"))


def test_a_tender_when_nothing_is_due_is_refused():
    with pytest.raises(TenderNotNeeded):
        settle(Standing.COUNTER, 0, Tender(100, "cash"))


@given(
    prices=st.lists(st.integers(0, 10_000), min_size=1, max_size=6),
    shipping=st.integers(0, 5_000),
    tax=st.integers(0, 5_000),
    data=st.data(),
)
def test_handovers_in_any_split_pay_exactly_the_total(prices, shipping, tax, data):
    """Units handed over one by one, each handover paying what it owes: no tender is ever
    negative, the goods are always paid exactly their due value, and all of them the total."""
    subtotal = sum(prices)
    discount = data.draw(st.integers(0, subtotal + shipping + tax))
    totals = OrderTotals(subtotal, shipping, tax, discount)
    order = data.draw(st.permutations(prices))
    value = paid = 0
    for index, price in enumerate(order):
        value += price
        closes = index == len(order) - 1
        due = due_at_handover(totals, value_after=value, closes=closes, paid=paid)
        assert due >= 0
        tendered = settle(Standing.COUNTER, due, Tender(due, "card")) if due else settle(Standing.COUNTER, due, None)
        paid += tendered.amount if tendered else 0
        assert paid == due_for(totals, value, closes_order=closes)
    assert paid == totals.total
