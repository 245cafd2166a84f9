"""What a change to an order's goods makes due on its card payment (``payments/settlement.py``)."""

from __future__ import annotations

import uuid

from orchestrator.payments.model import GoodsLine
from orchestrator.payments.settlement import Due, GoodsMoved, NewCapture, due_after_change
from orchestrator.platform.money import OrderTotals

TOTALS = OrderTotals(subtotal=2500, shipping_total=500)  # 2 × 1250 + 500 = 3000
FO = uuid.uuid4()
ONE = (GoodsLine(1, 1250),)


def test_multicapture_queues_each_handover_and_a_repeated_trigger_asks_nothing_again():
    first = due_after_change(
        TOTALS, multicapture=True, before=(), moved=[GoodsMoved(FO, ONE)], closes=False, requested=0
    )
    assert first == Due((NewCapture(FO, 1500, held=False),))
    last = due_after_change(
        TOTALS, multicapture=True, before=ONE, moved=[GoodsMoved(FO, ONE)], closes=True, requested=1500
    )
    assert last.captures == (NewCapture(FO, 1500, held=False),) and not last.void
    again = due_after_change(TOTALS, multicapture=True, before=ONE * 2, moved=[], closes=True, requested=3000)
    assert again.captures == () and not again.void


def test_without_multicapture_handovers_are_held_until_the_last_fulfillment_closes():
    part = due_after_change(
        TOTALS, multicapture=False, before=(), moved=[GoodsMoved(FO, ONE)], closes=False, requested=0
    )
    assert part == Due((NewCapture(FO, 1500, held=True),), release_held=False)
    rest_cancelled = due_after_change(TOTALS, multicapture=False, before=ONE, moved=[], closes=True, requested=1500)
    assert rest_cancelled == Due((), release_held=True)


def test_an_order_closed_with_nothing_handed_over_is_voided_once():
    assert due_after_change(TOTALS, multicapture=False, before=(), moved=[], closes=True, requested=0).void
    assert not due_after_change(
        TOTALS, multicapture=False, before=(), moved=[], closes=True, requested=0, voided=True
    ).void
    assert not due_after_change(TOTALS, multicapture=False, before=(), moved=[], closes=False, requested=0).void


def test_goods_worth_nothing_owe_their_total_once_when_the_order_closes():
    free = OrderTotals(subtotal=0, shipping_total=499)
    sample = (GoodsLine(1, 0),)
    held = due_after_change(
        free, multicapture=False, before=(), moved=[GoodsMoved(FO, sample)], closes=False, requested=0
    )
    assert held.captures == ()
    closed = due_after_change(free, multicapture=False, before=sample, moved=[], closes=True, requested=0)
    assert closed.captures == (NewCapture(None, 499, held=False),) and not closed.void
    assert (
        due_after_change(free, multicapture=False, before=sample, moved=[], closes=True, requested=499).captures == ()
    )


def test_with_multicapture_a_cancel_closing_the_order_after_non_final_captures_releases_the_rest():
    closed = due_after_change(
        TOTALS, multicapture=True, before=ONE, moved=[], closes=True, requested=1500, holds_rest=True
    )
    assert closed == Due((), release_rest=True)
    # Once: a release (or void) already queued is not asked again by a later change.
    assert not due_after_change(
        TOTALS, multicapture=True, before=ONE, moved=[], closes=True, requested=1500, holds_rest=True, voided=True
    ).release_rest


def test_no_release_while_a_capture_is_to_run_or_when_the_closing_capture_is_final():
    # A capture still queued runs final once the last fulfillment closed: it releases the rest itself.
    assert not due_after_change(
        TOTALS, multicapture=True, before=ONE, moved=[], closes=True, requested=1500, holds_rest=False
    ).release_rest
    # The handover that closes the order is captured finally.
    last = due_after_change(
        TOTALS, multicapture=True, before=ONE, moved=[GoodsMoved(FO, ONE)], closes=True, requested=1500, holds_rest=True
    )
    assert last.captures == (NewCapture(FO, 1500, held=False),) and not last.release_rest
    # An order still open keeps its authorisation; without multicapture the final capture releases.
    assert not due_after_change(
        TOTALS, multicapture=True, before=ONE, moved=[], closes=False, requested=1500, holds_rest=True
    ).release_rest
    assert not due_after_change(
        TOTALS, multicapture=False, before=ONE, moved=[], closes=True, requested=1500, holds_rest=True
    ).release_rest
