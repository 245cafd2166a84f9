"""The authorisation-expiry rule (``payments/expiry.py``): when a card payment is flagged, when it
expires, when its held captures go early, and what the rest of the order costs afterwards."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.payments.expiry import Decision, Facts, Step, decide, lapsed, remainder
from orchestrator.platform.money import OrderTotals

DEADLINE = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
WARNING = timedelta(hours=24)
LIVE = Facts(
    status="authorised",
    capture_before=DEADLINE,
    goods_to_hand_over=True,
    multicapture=False,
    held=0,
    warned=False,
    expired=False,
)


def test_the_warning_comes_at_capture_before_minus_the_warning_not_before():
    assert decide(LIVE, DEADLINE - WARNING - timedelta(seconds=1), WARNING) == Decision(Step.NOTHING)
    assert decide(LIVE, DEADLINE - WARNING, WARNING) == Decision(Step.WARN)
    assert decide(LIVE, DEADLINE - timedelta(seconds=1), WARNING) == Decision(Step.WARN)


def test_the_warning_is_given_once_and_only_with_goods_left():
    assert decide(replace(LIVE, warned=True), DEADLINE - WARNING, WARNING).step is Step.NOTHING
    assert decide(replace(LIVE, goods_to_hand_over=False), DEADLINE - WARNING, WARNING).step is Step.NOTHING
    partly = replace(LIVE, status="partially_captured", multicapture=True)
    assert decide(partly, DEADLINE - WARNING, WARNING).step is Step.WARN


def test_held_captures_go_early_only_without_multicapture():
    held = replace(LIVE, held=1500)
    assert decide(held, DEADLINE - WARNING, WARNING) == Decision(Step.WARN, capture_held=True)
    assert decide(replace(held, multicapture=True), DEADLINE - WARNING, WARNING).capture_held is False
    assert decide(LIVE, DEADLINE - WARNING, WARNING).capture_held is False


@pytest.mark.parametrize("goods", [True, False])
@pytest.mark.parametrize("warned", [True, False])
def test_from_capture_before_on_a_live_payment_expires_once(goods, warned):
    facts = replace(LIVE, goods_to_hand_over=goods, warned=warned)
    assert decide(facts, DEADLINE, WARNING).step is Step.EXPIRE
    assert decide(facts, DEADLINE + timedelta(days=3), WARNING).step is Step.EXPIRE
    assert decide(replace(facts, expired=True), DEADLINE, WARNING).step is Step.NOTHING


@pytest.mark.parametrize("status", ["pending", "captured", "voided", "failed", "refunded", "partially_refunded"])
def test_a_payment_holding_no_authorisation_is_left_alone(status):
    facts = replace(LIVE, status=status)
    assert decide(facts, DEADLINE - WARNING, WARNING).step is Step.NOTHING
    assert decide(facts, DEADLINE + timedelta(hours=1), WARNING).step is Step.NOTHING
    assert decide(replace(LIVE, capture_before=None), DEADLINE, WARNING).step is Step.NOTHING


def test_lapsed_from_capture_before_on():
    assert not lapsed(DEADLINE, DEADLINE - timedelta(microseconds=1))
    assert lapsed(DEADLINE, DEADLINE)
    assert not lapsed(None, DEADLINE)


def test_the_remainder_is_what_the_goods_left_cost_with_their_share():
    # 2 × 12.50 + 5.00 shipping = 30.00; one unit handed over, its 15.00 asked.
    totals = OrderTotals(2500, 500, 0, 0)
    assert remainder(totals, handed_over=1250, to_hand_over=1250, requested=1500) == 1500
    # Nothing left to hand over: nothing to authorise again.
    assert remainder(totals, handed_over=2500, to_hand_over=0, requested=3000) == 0
    # One unit cancelled: its share is never charged.
    three = OrderTotals(3000, 600, 0, 0)  # 3 × 10.00 + 6.00
    assert remainder(three, handed_over=1000, to_hand_over=1000, requested=1200) == 1200
    # Together the captures and the remainder come to exactly the total, whatever was handed over.
    for handed in range(0, 2501, 250):
        asked = handed * totals.total // totals.subtotal
        assert asked + remainder(totals, handed_over=handed, to_hand_over=2500 - handed, requested=asked) == 3000


def test_the_warning_is_configured_in_hours(monkeypatch):
    from orchestrator.settings import Settings

    assert Settings().authorisation_expiry_warning_hours == 24
    monkeypatch.setenv("ORCHESTRATOR_AUTHORISATION_EXPIRY_WARNING_HOURS", "36")
    assert Settings().authorisation_expiry_warning_hours == 36
