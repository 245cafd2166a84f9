"""The payment timeout's rule (``payments/timers.py::verdict``): Stripe's word on a waiting order."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.payments.gateway import IntentStatus, PaymentState
from orchestrator.payments.timers import Verdict, verdict

TIMEOUT = timedelta(minutes=30)


def state(status: IntentStatus, amount: int = 3000, currency: str = "EUR") -> PaymentState:
    return PaymentState("pi_1", status, currency, amount, 0, 0, 0, 0, None, False)


def rule(found: PaymentState | None, age: timedelta) -> Verdict:
    return verdict(found, stripe_amount=3000, currency="EUR", age=age, timeout=TIMEOUT)


def test_money_held_for_the_order_is_applied_at_any_age() -> None:
    assert rule(state(IntentStatus.REQUIRES_CAPTURE), timedelta(minutes=1)) is Verdict.AUTHORISED
    assert rule(state(IntentStatus.REQUIRES_CAPTURE), TIMEOUT * 10) is Verdict.AUTHORISED


@pytest.mark.parametrize(
    "found",
    [
        state(IntentStatus.REQUIRES_ACTION),
        state(IntentStatus.REQUIRES_PAYMENT_METHOD),
        state(IntentStatus.CANCELED),
        state(IntentStatus.REQUIRES_CAPTURE, amount=2999),  # not what the order needs
        state(IntentStatus.REQUIRES_CAPTURE, currency="USD"),
        None,  # Stripe has none for the order
    ],
)
def test_anything_else_waits_until_the_timeout_then_times_out(found: PaymentState | None) -> None:
    assert rule(found, TIMEOUT - timedelta(seconds=1)) is Verdict.WAIT
    assert rule(found, TIMEOUT) is Verdict.TIME_OUT


@pytest.mark.parametrize("status", [IntentStatus.PROCESSING, IntentStatus.SUCCEEDED])
def test_money_moving_or_moved_is_never_timed_out(status: IntentStatus) -> None:
    assert rule(state(status), TIMEOUT * 10) is Verdict.WAIT
