"""What a Stripe webhook event means for our payment (``payments/stripe_events.py``, pure): each
handled type's decision, stale and out-of-order events changing nothing, amounts converted from
Stripe's unit to ISO 4217 minor units, unknown types and unreadable fields ignored."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.payments.gateway import IntentStatus
from orchestrator.payments.stripe_events import (
    Action,
    MalformedEvent,
    Outcome,
    Received,
    Recorded,
    decide,
    from_stripe_amount,
    intent_state,
    read_event,
)
from orchestrator.platform.money import MAX_SUBTOTAL, to_stripe_amount

T0 = 1_790_000_000
INTENT = "pi_1"


def envelope(event_type: str, obj: dict[str, Any], *, created: int = T0, event_id: str = "evt_1") -> dict:
    return {"id": event_id, "object": "event", "type": event_type, "created": created, "data": {"object": obj}}


def received(event_type: str, obj: dict[str, Any], *, created: int = T0) -> Received:
    return read_event(envelope(event_type, obj, created=created))


def intent(status: str = "requires_capture", *, amount: int = 3000, capturable: int = 3000, got: int = 0, **more):
    return {
        "id": INTENT,
        "object": "payment_intent",
        "status": status,
        "currency": more.pop("currency", "eur"),
        "amount": amount,
        "amount_capturable": capturable,
        "amount_received": got,
        **more,
    }


def charge(*, amount: int = 3000, captured: int = 3000, refunded: int = 0, refunds: list | None = None) -> dict:
    return {
        "id": "ch_1",
        "object": "charge",
        "payment_intent": INTENT,
        "amount": amount,
        "amount_captured": captured,
        "amount_refunded": refunded,
        "refunds": {"object": "list", "data": refunds or []},
    }


WAITING = Recorded(
    status="pending",
    currency="EUR",
    authorised=0,
    captured=0,
    refunded=0,
    multicapture=False,
    order_status="pending_payment",
    order_total=3000,
)
AUTHORISED = dataclasses.replace(WAITING, status="authorised", authorised=3000, order_status="confirmed")
CAPTURED = dataclasses.replace(AUTHORISED, status="captured", captured=3000)


# --- the envelope -----------------------------------------------------------------------------


def test_the_envelope_is_read_with_the_intent_it_is_about():
    ev = received("charge.refunded", charge())
    assert (ev.id, ev.type, ev.object_id, ev.intent_id) == ("evt_1", "charge.refunded", "ch_1", INTENT)
    assert ev.created == datetime.fromtimestamp(T0, UTC)
    expanded = received("charge.dispute.created", {"id": "dp_1", "object": "dispute", "payment_intent": {"id": "pi_9"}})
    assert (expanded.object_id, expanded.intent_id) == ("dp_1", "pi_9")
    assert received("payment_intent.succeeded", intent()).intent_id == INTENT


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"object": "charge"},
        {**envelope("x", {}), "id": ""},
        {**envelope("x", {}), "type": None},
        {**envelope("x", {}), "created": "1790000000"},
        {**envelope("x", {}), "created": True},
        {**envelope("x", {}), "created": 10**13},  # beyond a datetime
        {**envelope("x", {}), "created": -(10**15)},
        {**envelope("x", {}), "data": {"object": "pi_1"}},
        {**envelope("x", {}), "data": []},
    ],
)
def test_what_is_not_a_stripe_event_is_malformed(payload):
    with pytest.raises(MalformedEvent):
        read_event(payload)


# --- types ------------------------------------------------------------------------------------


def test_unknown_types_are_ignored_whatever_the_payment():
    ev = received("customer.created", {"id": "cus_1", "object": "customer"})
    assert decide(ev, AUTHORISED, newest_applied=None).outcome is Outcome.IGNORED_TYPE
    assert decide(ev, None, newest_applied=None).outcome is Outcome.IGNORED_TYPE


def test_requires_action_is_received_and_changes_nothing():
    ev = received("payment_intent.requires_action", intent("requires_action", capturable=0))
    assert decide(ev, WAITING, newest_applied=None) == decide(ev, None, newest_applied=None)
    assert decide(ev, WAITING, newest_applied=None).outcome is Outcome.RECEIVED


def test_an_intent_no_payment_of_ours_names_is_ignored():
    ev = received("payment_intent.succeeded", intent("succeeded", capturable=0, got=3000))
    assert decide(ev, None, newest_applied=None).outcome is Outcome.IGNORED_UNKNOWN_PAYMENT


# --- 3-D Secure finished, failed, cancelled ---------------------------------------------------


def test_amount_capturable_updated_authorises_a_waiting_payment():
    ev = received("payment_intent.amount_capturable_updated", intent())
    d = decide(ev, WAITING, newest_applied=None)
    assert (d.outcome, d.action, d.captured, d.status, d.final) == (
        Outcome.APPLIED,
        Action.AUTHORISE,
        0,
        "authorised",
        False,
    )
    assert d.state is not None and d.state.status is IntentStatus.REQUIRES_CAPTURE
    assert d.state.capture_before == datetime.fromtimestamp(T0, UTC) + timedelta(days=7)


def test_the_charges_capture_before_wins_over_the_week():
    card = {"capture_before": T0 + 3600, "multicapture": {"status": "available"}}
    obj = intent(latest_charge={"id": "ch_1", "payment_method_details": {"card": card}})
    state = intent_state(received("payment_intent.amount_capturable_updated", obj))
    assert state is not None
    assert (state.capture_before, state.multicapture, state.charge_id) == (
        datetime.fromtimestamp(T0 + 3600, UTC),
        True,
        "ch_1",
    )


def test_a_succeeded_intent_authorises_and_records_the_capture_made_with_it():
    ev = received("payment_intent.succeeded", intent("succeeded", capturable=0, got=3000))
    d = decide(ev, WAITING, newest_applied=None)
    assert (d.action, d.captured, d.status, d.final) == (Action.AUTHORISE, 3000, "captured", True)


@pytest.mark.parametrize(
    "obj", [intent(amount=2999, capturable=2999), intent(currency="usd"), intent(amount="3000"), intent(currency=None)]
)
def test_an_intent_for_another_amount_or_currency_authorises_nothing(obj):
    d = decide(received("payment_intent.amount_capturable_updated", obj), WAITING, newest_applied=None)
    assert d.outcome is Outcome.IGNORED_MISMATCH


def test_an_intent_not_holding_money_authorises_nothing():
    obj = intent("requires_payment_method", capturable=0)
    d = decide(received("payment_intent.amount_capturable_updated", obj), WAITING, newest_applied=None)
    assert d.outcome is Outcome.IGNORED_STATE
    bad = intent("no_such_status")
    assert decide(received("payment_intent.succeeded", bad), WAITING, newest_applied=None).outcome is (
        Outcome.IGNORED_STATE
    )


def test_a_failed_attempt_on_a_waiting_payment_is_recorded_with_stripes_codes():
    error = {"code": "card_declined", "decline_code": "insufficient_funds"}
    obj = intent("requires_payment_method", capturable=0, last_payment_error=error)
    d = decide(received("payment_intent.payment_failed", obj), WAITING, newest_applied=None)
    assert (d.action, d.code, d.decline_code) == (Action.FAIL_ATTEMPT, "card_declined", "insufficient_funds")
    odd = intent("requires_payment_method", capturable=0, last_payment_error="declined")
    assert decide(received("payment_intent.payment_failed", odd), WAITING, newest_applied=None).code is None
    assert decide(received("payment_intent.payment_failed", obj), AUTHORISED, newest_applied=None).outcome is (
        Outcome.IGNORED_STATE
    )


def test_cancelled_waiting_fails_cancelled_authorised_voids_cancelled_after_capture_changes_nothing():
    ev = received("payment_intent.canceled", intent("canceled", capturable=0))
    assert decide(ev, WAITING, newest_applied=None).action is Action.CANCEL_PENDING
    voided = decide(ev, AUTHORISED, newest_applied=None)
    assert (voided.action, voided.reason) == (Action.VOID, "payment_canceled")
    partly = dataclasses.replace(AUTHORISED, status="partially_captured", captured=1000, multicapture=True)
    assert decide(ev, partly, newest_applied=None).outcome is Outcome.IGNORED_STATE
    for status in ("voided", "failed"):
        gone = dataclasses.replace(AUTHORISED, status=status)
        assert decide(ev, gone, newest_applied=None).outcome is Outcome.IGNORED_STATE


# --- captures made outside the worker ---------------------------------------------------------


def test_a_capture_made_in_the_dashboard_moves_captured_up():
    ev = received("payment_intent.succeeded", intent("succeeded", capturable=0, got=3000))
    d = decide(ev, AUTHORISED, newest_applied=None)
    assert (d.action, d.captured, d.refunded, d.status, d.final) == (Action.MOVE, 3000, 0, "captured", True)
    assert decide(ev, CAPTURED, newest_applied=None).outcome is Outcome.IGNORED_STATE


def test_captured_never_exceeds_what_was_authorised():
    ev = received("payment_intent.succeeded", intent("succeeded", amount=9000, capturable=0, got=9000))
    assert decide(ev, AUTHORISED, newest_applied=None).captured == 3000


def test_money_our_worker_is_moving_is_left_to_the_worker():
    ev = received("payment_intent.succeeded", intent("succeeded", capturable=0, got=3000))
    moving = dataclasses.replace(AUTHORISED, captures_in_flight=True)
    assert decide(ev, moving, newest_applied=None).outcome is Outcome.IGNORED_IN_FLIGHT
    refunding = dataclasses.replace(CAPTURED, refunds_in_flight=True)
    refunded = received("charge.refunded", charge(refunded=1000))
    assert decide(refunded, refunding, newest_applied=None).outcome is Outcome.IGNORED_IN_FLIGHT


# --- refunds ----------------------------------------------------------------------------------


def test_a_dashboard_refund_moves_refunded_up_partly_then_fully():
    first = received("charge.refunded", charge(refunded=1000, refunds=[{"id": "re_1", "reason": "duplicate"}]))
    d = decide(first, CAPTURED, newest_applied=None)
    assert (d.action, d.captured, d.refunded, d.status) == (Action.MOVE, 3000, 1000, "partially_refunded")
    assert (d.external_id, d.reason) == ("re_1", "duplicate")
    after = dataclasses.replace(CAPTURED, status="partially_refunded", refunded=1000)
    full = decide(received("charge.refunded", charge(refunded=3000)), after, newest_applied=None)
    assert (full.refunded, full.status) == (3000, "refunded")


def test_the_remainder_a_final_capture_released_is_not_a_refund():
    # 2000 of 3000 captured, final: Stripe says 1000 "refunded" — the released remainder.
    partly = dataclasses.replace(AUTHORISED, status="captured", captured=2000)
    d = decide(received("charge.refunded", charge(captured=2000, refunded=1000)), partly, newest_applied=None)
    assert d.outcome is Outcome.IGNORED_STATE
    d = decide(received("charge.refunded", charge(captured=2000, refunded=1500)), partly, newest_applied=None)
    assert (d.refunded, d.status) == (500, "partially_refunded")


def test_a_refund_on_a_live_multicapture_payment_keeps_it_capturable():
    live = dataclasses.replace(AUTHORISED, status="partially_captured", captured=1000, multicapture=True)
    d = decide(received("charge.refunded", charge(captured=1000, refunded=400)), live, newest_applied=None)
    assert (d.refunded, d.status, d.final) == (400, "partially_captured", False)


def test_refunded_never_exceeds_captured_and_odd_refund_lists_are_read_as_none():
    d = decide(received("charge.refunded", charge(refunded=9000)), CAPTURED, newest_applied=None)
    assert (d.refunded, d.status) == (3000, "refunded")
    odd = {**charge(refunded=100), "refunds": {"data": ["re_1"]}}
    d = decide(received("charge.refunded", odd), CAPTURED, newest_applied=None)
    assert (d.refunded, d.external_id) == (100, None)
    listed = {**charge(refunded=100), "refunds": []}
    assert decide(received("charge.refunded", listed), CAPTURED, newest_applied=None).refunded == 100


def test_a_refund_event_without_amounts_or_on_a_payment_without_money_changes_nothing():
    unreadable = {**charge(), "amount_captured": None}
    assert decide(received("charge.refunded", unreadable), CAPTURED, newest_applied=None).outcome is (
        Outcome.IGNORED_STATE
    )
    assert decide(received("charge.refunded", charge(refunded=10)), WAITING, newest_applied=None).outcome is (
        Outcome.IGNORED_STATE
    )


# --- disputes ---------------------------------------------------------------------------------


def test_a_dispute_is_recorded_once():
    opened = {"id": "dp_1", "object": "dispute", "payment_intent": INTENT, "amount": 3000, "reason": "fraudulent"}
    ev = received("charge.dispute.created", {**opened, "status": "needs_response"})
    d = decide(ev, CAPTURED, newest_applied=None)
    assert (d.action, d.external_id, d.amount, d.reason, d.code) == (
        Action.DISPUTE,
        "dp_1",
        3000,
        "fraudulent",
        "needs_response",
    )
    seen = dataclasses.replace(CAPTURED, disputes=frozenset({"dp_1"}))
    assert decide(ev, seen, newest_applied=None).outcome is Outcome.IGNORED_STATE


def test_a_disputed_amount_beyond_an_amount_column_is_not_read_as_one():
    ev = received(
        "charge.dispute.created", {"id": "dp_2", "object": "dispute", "payment_intent": INTENT, "amount": 2**70}
    )
    assert decide(ev, CAPTURED, newest_applied=None).amount == 0


# --- late and out of order --------------------------------------------------------------------


def test_an_event_older_than_one_applied_for_the_object_is_stale():
    ev = received("payment_intent.succeeded", intent("succeeded", capturable=0, got=3000), created=T0)
    newer = datetime.fromtimestamp(T0 + 1, UTC)
    assert decide(ev, AUTHORISED, newest_applied=newer).outcome is Outcome.IGNORED_STALE
    same = datetime.fromtimestamp(T0, UTC)
    assert decide(ev, AUTHORISED, newest_applied=same).outcome is Outcome.APPLIED


def test_an_older_event_arriving_after_a_newer_never_rolls_back():
    # The capturable update arrives after the capture was applied: it carries less, changes nothing.
    late = received("payment_intent.amount_capturable_updated", intent())
    assert decide(late, CAPTURED, newest_applied=None).outcome is Outcome.IGNORED_STATE
    # An earlier partial refund arriving after the full one.
    refunded = dataclasses.replace(CAPTURED, status="refunded", refunded=3000)
    early = received("charge.refunded", charge(refunded=1000))
    assert decide(early, refunded, newest_applied=None).outcome is Outcome.IGNORED_STATE


# --- Stripe's unit ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "minor", "stripe"),
    [("EUR", 1234, 1234), ("JPY", 500, 500), ("BHD", 1230, 1230), ("ISK", 5, 500), ("UGX", 7, 700), ("MGA", 300, 3)],
)
def test_amounts_convert_between_stripes_unit_and_minor_units(currency, minor, stripe):
    assert to_stripe_amount(minor, currency) == stripe
    assert from_stripe_amount(stripe, currency) == minor


@pytest.mark.parametrize("value", [None, "100", 1.5, True, -1, 2**63])
def test_what_is_not_an_amount_reads_as_nothing(value):
    assert from_stripe_amount(value, "EUR") == 0


def test_a_huge_scaled_amount_stays_within_an_amount_column():
    assert from_stripe_amount(MAX_SUBTOTAL, "MGA") == MAX_SUBTOTAL


def test_event_amounts_are_converted_into_the_payments_currency():
    isk = dataclasses.replace(AUTHORISED, currency="ISK", authorised=30, order_total=30)
    ev = received("payment_intent.succeeded", intent("succeeded", currency="isk", amount=3000, capturable=0, got=3000))
    d = decide(ev, isk, newest_applied=None)
    assert (d.captured, d.status) == (30, "captured")
    waiting = dataclasses.replace(WAITING, currency="ISK", order_total=30)
    ok = received("payment_intent.amount_capturable_updated", intent(currency="isk", amount=3000, capturable=3000))
    assert decide(ok, waiting, newest_applied=None).action is Action.AUTHORISE
    wrong = received("payment_intent.amount_capturable_updated", intent(currency="isk", amount=30, capturable=30))
    assert decide(wrong, waiting, newest_applied=None).outcome is Outcome.IGNORED_MISMATCH
    captured = dataclasses.replace(isk, status="captured", captured=30)
    refund = received("charge.refunded", charge(amount=3000, captured=3000, refunded=1000))
    assert decide(refund, captured, newest_applied=None).refunded == 10
    jpy = dataclasses.replace(CAPTURED, currency="JPY")
    dispute = {"id": "dp_3", "object": "dispute", "payment_intent": INTENT, "amount": 3000}
    assert decide(received("charge.dispute.created", dispute), jpy, newest_applied=None).amount == 3000


def test_an_unreadable_capture_before_or_charge_is_read_as_none():
    odd = intent(latest_charge={"id": "ch_1", "payment_method_details": {"card": {"capture_before": 10**13}}})
    state = intent_state(received("payment_intent.amount_capturable_updated", odd))
    assert state is not None and state.capture_before == datetime.fromtimestamp(T0, UTC) + timedelta(days=7)
    odd = intent(latest_charge={"id": "ch_1", "payment_method_details": "card"})
    assert intent_state(received("payment_intent.amount_capturable_updated", odd)) is not None
