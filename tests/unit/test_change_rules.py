"""The rule of an order change, on snapshots: what each action may do, and the effects when all may."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from orchestrator.fulfillment.model import Fulfillment, Line, MoveKind, Order, OrderLine
from orchestrator.fulfillment.requests import Context
from orchestrator.order_record.states import Method, Status
from orchestrator.orders.change_rules import (
    CancelLine,
    CancelOrder,
    ChangeAddress,
    OrderState,
    SetQuantity,
    Site,
    check_actions,
    plan_change,
)
from orchestrator.platform.actors import Actor
from orchestrator.platform.errors import InvalidRequest
from orchestrator.platform.money import OrderTotals

A, B = uuid.uuid4(), uuid.uuid4()
SITES = {
    "S1": Site(1, "S1", frozenset({"pickup", "ship"})),
    "S2": Site(2, "S2", frozenset({"pickup", "ship"})),
    "WH": Site(3, "WH", frozenset({"ship"})),
}
CTX = Context(Actor("channel", "app", channel="app"), datetime(2026, 12, 1, tzinfo=UTC), "secret")


def fulfillment(status: Status = Status.PENDING, *, a: int = 3, b: int = 2, picked: int = 0, **kw) -> Fulfillment:
    lines = (
        Line(uuid.uuid4(), A, "A", a, picked=picked, reserved=a - picked, reserved_here=a - picked),
        Line(uuid.uuid4(), B, "B", b, reserved=b, reserved_here=b),
    )
    return Fulfillment(uuid.uuid4(), status, kw.pop("method", Method.PICKUP), 1, "S1", lines, **kw)


def state(*fulfillments: Fulfillment, unsourced_a: int = 0, method: Method = Method.PICKUP) -> OrderState:
    lines = (OrderLine(A, "A", 3 + unsourced_a, unsourced=unsourced_a), OrderLine(B, "B", 2))
    subtotal = (3 + unsourced_a) * 1000 + 2 * 500
    return OrderState(
        Order("placed", fulfillments, lines),
        method,
        {A: 1000, B: 500},
        OrderTotals(subtotal, 500, 0, 0),
        pickup_location="S1" if method.is_pickup else None,
        sites=SITES,
    )


def test_a_lower_quantity_cancels_the_units_and_releases_their_reservation():
    fo = fulfillment()
    plan = plan_change(state(fo), [SetQuantity(A, 1)], CTX)
    assert plan.accepted
    [outcome] = plan.outcomes
    assert outcome.state is Status.PENDING
    assert [(c.line_id, c.cancelled) for c in outcome.lines] == [(fo.lines[0].id, 2)]
    assert [(m.kind, m.quantity) for m in outcome.moves] == [(MoveKind.RELEASE, 2)]
    assert [(c.order_line_id, c.cancelled) for c in plan.order_lines] == [(A, 2)]
    assert (plan.totals_after.subtotal, plan.totals_after.total) == (2000, 2500)


def test_units_no_location_took_are_taken_away_first():
    plan = plan_change(state(fulfillment(), unsourced_a=2), [CancelLine(A, 2)], CTX)
    assert plan.outcomes == ()
    [line] = plan.order_lines
    assert (line.cancelled, line.unsourced) == (2, -2)


def test_a_fulfillment_left_with_nothing_is_cancelled():
    plan = plan_change(state(fulfillment()), [CancelLine(A), CancelLine(B)], CTX)
    [outcome] = plan.outcomes
    assert outcome.state is Status.CANCELLED
    assert sum(m.quantity for m in outcome.moves) == 5
    assert [e.type.value for e in outcome.events] == ["fulfillment.cancelled"]
    assert plan.totals_after.subtotal == 0


def test_actions_on_one_line_add_up_in_order():
    plan = plan_change(state(fulfillment()), [CancelLine(A, 1), SetQuantity(A, 1)], CTX)
    assert plan.accepted and plan.taken == {A: 2}
    refused = plan_change(state(fulfillment()), [CancelLine(A, 2), CancelLine(A, 2)], CTX)
    assert [d.reason for d in refused.decisions] == [None, "more_than_left"]
    assert refused.outcomes == () and refused.totals_after == refused.totals_before


@pytest.mark.parametrize(
    ("status", "picked", "reason"),
    [
        (Status.PICKING, 0, "picking_started"),
        (Status.PICKING, 3, "already_picked"),
        (Status.READY_FOR_PICKUP, 3, "already_picked"),
    ],
)
def test_units_a_store_started_on_are_fixed_and_the_whole_change_is_refused(status, picked, reason):
    plan = plan_change(state(fulfillment(status, picked=picked)), [SetQuantity(A, 2), CancelLine(B, 1)], CTX)
    assert not plan.accepted
    assert [(d.accepted, d.reason) for d in plan.decisions] == [(False, reason), (False, "picking_started")]
    assert plan.outcomes == () and plan.order_lines == ()


def test_units_a_transfer_carries_are_fixed():
    pickup = fulfillment(Status.PENDING)
    transfer = fulfillment(Status.ACCEPTED, method=Method.TRANSFER, feeds=pickup.id)
    plan = plan_change(state(pickup, transfer), [CancelLine(B, 1)], CTX)
    assert [d.reason for d in plan.decisions] == ["in_transfer"]


def test_the_address_changes_only_for_a_parcel_not_yet_packed():
    parcel = fulfillment(method=Method.SHIP)
    address = {"line1": "2 Other St", "country": "DE"}
    plan = plan_change(state(parcel, method=Method.SHIP), [ChangeAddress(address)], CTX)
    assert plan.accepted and plan.fields.address == address
    assert [o.fields["ship_address"] for o in plan.outcomes] == [address]
    packed = plan_change(
        state(fulfillment(Status.PACKED, method=Method.SHIP), method=Method.SHIP), [ChangeAddress(address)], CTX
    )
    assert [d.reason for d in packed.decisions] == ["already_packed_or_shipped"]
    pickup = plan_change(state(fulfillment()), [ChangeAddress(address)], CTX)
    assert [d.reason for d in pickup.decisions] == ["not_a_shipment"]


def test_the_discount_is_capped_at_what_is_left_to_take_it_off():
    s = state(fulfillment())
    s = OrderState(s.order, s.method, s.prices, OrderTotals(4000, 500, 0, 3000))
    plan = plan_change(s, [CancelLine(A)], CTX)
    assert (plan.totals_after.subtotal, plan.totals_after.discount_total, plan.totals_after.total) == (1000, 1500, 0)


def test_cancel_order_stands_alone_and_cancels_what_is_open():
    fo = fulfillment()
    alone = plan_change(state(fo), [CancelOrder("changed my mind")], CTX)
    assert alone.accepted and [o.state for o in alone.outcomes] == [Status.CANCELLED]
    assert alone.totals_after == alone.totals_before
    mixed = plan_change(state(fo), [CancelLine(B, 1), CancelOrder()], CTX)
    assert [d.reason for d in mixed.decisions] == [None, "cancel_order_stands_alone"]


def test_a_raised_quantity_joins_the_pickup_nobody_picks_yet():
    fo = fulfillment()
    plan = plan_change(state(fo), [CancelLine(B, 1), SetQuantity(A, 5)], CTX)
    assert plan.accepted and plan.raised == {A: 2} and plan.taken == {B: 1}
    [ask] = plan.asks
    assert (ask.pickup, ask.units, ask.joining, ask.index) == (fo.id, {A: 2}, {A: 2}, 1)
    assert plan.totals_after.subtotal == plan.totals_before.subtotal - 500 + 2000


def test_an_unknown_line_is_no_change_at_all():
    with pytest.raises(InvalidRequest) as unknown:
        check_actions(state(fulfillment()), [CancelLine(uuid.uuid4())])
    assert unknown.value.field == "actions[0].line_id"
