"""The order's status is derived from its fulfillment orders, as the customer sees them."""

from __future__ import annotations

import pytest

from orchestrator.order_record.states import Method, Status
from orchestrator.order_record.status import FulfillmentSummary, OrderStatus, derive_order_status

S, M, OS = Status, Method, OrderStatus


def fo(status: Status, method: Method = M.PICKUP, handed_over: int = 0) -> FulfillmentSummary:
    return FulfillmentSummary(status, method, handed_over)


def test_an_order_whose_fulfillments_are_all_pending_is_received() -> None:
    assert derive_order_status([fo(S.PENDING), fo(S.PENDING, M.SHIP)]) is OS.RECEIVED


@pytest.mark.parametrize("status", [S.ACCEPTED, S.PICKING, S.PACKED])
def test_an_order_being_worked_on_is_in_progress(status: Status) -> None:
    method = M.SHIP if status is S.PACKED else M.PICKUP
    assert derive_order_status([fo(status, method)]) is OS.IN_PROGRESS


def test_one_accepted_and_one_pending_fulfillment_is_in_progress() -> None:
    assert derive_order_status([fo(S.PENDING, M.SHIP), fo(S.ACCEPTED, M.SHIP)]) is OS.IN_PROGRESS


def test_an_order_is_ready_for_pickup_only_when_every_live_fulfillment_is_ready() -> None:
    assert derive_order_status([fo(S.READY_FOR_PICKUP)]) is OS.READY_FOR_PICKUP
    assert derive_order_status([fo(S.READY_FOR_PICKUP, M.CURBSIDE)]) is OS.READY_FOR_PICKUP
    assert derive_order_status([fo(S.READY_FOR_PICKUP), fo(S.PICKING)]) is OS.IN_PROGRESS


def test_a_rejected_fulfillment_does_not_hold_back_ready_for_pickup() -> None:
    assert derive_order_status([fo(S.REJECTED), fo(S.READY_FOR_PICKUP)]) is OS.READY_FOR_PICKUP


def test_some_fulfillments_done_and_others_open_is_partially_fulfilled() -> None:
    assert derive_order_status([fo(S.SHIPPED, M.SHIP), fo(S.PACKED, M.SHIP)]) is OS.PARTIALLY_FULFILLED
    assert derive_order_status([fo(S.PICKED_UP), fo(S.PENDING, M.SHIP)]) is OS.PARTIALLY_FULFILLED
    assert derive_order_status([fo(S.PICKED_UP), fo(S.READY_FOR_PICKUP)]) is OS.PARTIALLY_FULFILLED


def test_a_partial_handover_makes_the_order_partially_fulfilled() -> None:
    only = [fo(S.READY_FOR_PICKUP, handed_over=2)]
    assert derive_order_status(only) is OS.PARTIALLY_FULFILLED


def test_a_partial_handover_counts_even_when_other_fulfillments_are_pending() -> None:
    mixed = [fo(S.READY_FOR_PICKUP, handed_over=1), fo(S.PENDING, M.SHIP)]
    assert derive_order_status(mixed) is OS.PARTIALLY_FULFILLED


@pytest.mark.parametrize(
    "statuses",
    [
        [(S.PICKED_UP, M.PICKUP)],
        [(S.PICKED_UP, M.CURBSIDE)],
        [(S.SHIPPED, M.SHIP)],
        [(S.DELIVERED, M.SHIP)],
        [(S.SHIPPED, M.SHIP), (S.DELIVERED, M.SHIP), (S.PICKED_UP, M.PICKUP)],
    ],
)
def test_every_live_fulfillment_handed_over_or_shipped_is_completed(statuses) -> None:
    assert derive_order_status([fo(s, m) for s, m in statuses]) is OS.COMPLETED


def test_fulfillments_closed_without_fulfilling_do_not_block_completion() -> None:
    fulfillments = [fo(S.REJECTED, M.SHIP), fo(S.CANCELLED, M.SHIP), fo(S.SHIPPED, M.SHIP)]
    assert derive_order_status(fulfillments) is OS.COMPLETED


@pytest.mark.parametrize(
    "closed",
    [[S.CANCELLED], [S.REJECTED, S.CANCELLED], [S.EXPIRED], [S.EXPIRED, S.REJECTED]],
)
def test_an_order_whose_every_fulfillment_closed_without_fulfilling_is_cancelled(closed) -> None:
    assert derive_order_status([fo(s) for s in closed]) is OS.CANCELLED


def test_needs_attention_wins_over_everything_else() -> None:
    assert derive_order_status([fo(S.PENDING)], needs_attention=True) is OS.NEEDS_ATTENTION
    assert derive_order_status([fo(S.PICKED_UP)], needs_attention=True) is OS.NEEDS_ATTENTION
    assert derive_order_status([fo(S.CANCELLED)], needs_attention=True) is OS.NEEDS_ATTENTION
    assert derive_order_status([], needs_attention=True) is OS.NEEDS_ATTENTION


def test_transfer_fulfillments_are_ignored_for_the_customer_facing_status() -> None:
    # The store is ready; a transfer still travelling (or already delivered) changes nothing.
    assert derive_order_status([fo(S.READY_FOR_PICKUP), fo(S.SHIPPED, M.TRANSFER)]) is OS.READY_FOR_PICKUP
    assert derive_order_status([fo(S.PENDING), fo(S.PICKING, M.TRANSFER)]) is OS.RECEIVED
    assert derive_order_status([fo(S.PENDING), fo(S.DELIVERED, M.TRANSFER)]) is OS.RECEIVED
    assert derive_order_status([fo(S.PICKED_UP), fo(S.PENDING, M.TRANSFER)]) is OS.COMPLETED


def test_a_rejected_transfer_does_not_cancel_the_order() -> None:
    assert derive_order_status([fo(S.ACCEPTED), fo(S.REJECTED, M.TRANSFER)]) is OS.IN_PROGRESS


def test_a_pickup_that_expired_after_a_partial_handover_still_reached_the_customer() -> None:
    assert derive_order_status([fo(S.EXPIRED, handed_over=1)]) is OS.COMPLETED
    assert derive_order_status([fo(S.CANCELLED, handed_over=2), fo(S.PICKED_UP)]) is OS.COMPLETED


def test_a_closed_partial_handover_beside_open_work_is_partially_fulfilled() -> None:
    assert derive_order_status([fo(S.EXPIRED, handed_over=1), fo(S.PENDING, M.SHIP)]) is OS.PARTIALLY_FULFILLED


def test_an_order_waiting_for_its_payment_stays_pending_payment_until_a_fulfillment_moves() -> None:
    waiting = [fo(S.PENDING), fo(S.PENDING, M.SHIP)]
    assert derive_order_status(waiting, awaiting_payment=True) is OS.PENDING_PAYMENT
    assert derive_order_status(waiting) is OS.RECEIVED  # paid: the stores take it
    assert derive_order_status([fo(S.CANCELLED)], awaiting_payment=True) is OS.CANCELLED
