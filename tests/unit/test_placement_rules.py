"""Where a change sends units, on snapshots: moving a pickup (its stock given back where it was,
the units asked for at the new store), switching between pickup and shipping, adding lines."""

from __future__ import annotations

import uuid
from dataclasses import replace

from orchestrator.fulfillment.model import Fulfillment, Line, MoveKind, Order
from orchestrator.order_record.states import Method, Status
from orchestrator.orders.change_rules import AddLine, CancelLine, MovePickup, SwitchToPickup, SwitchToShip, plan_change
from tests.unit.test_change_rules import CTX, A, B, fulfillment, state

ADDRESS = {"line1": "1 Main St", "country": "DE"}


def moves(outcome, kind):
    return sum(m.quantity for m in outcome.moves if m.kind is kind)


def test_a_moved_pickup_keeps_its_row_gives_back_its_stock_and_asks_for_it_at_the_new_store():
    fo = fulfillment(Status.PICKING, picked=2)  # 2 of A picked, 1 of A and 2 of B still reserved
    plan = plan_change(state(fo), [MovePickup("S2")], CTX)
    assert plan.accepted
    [outcome] = plan.outcomes
    assert outcome.fulfillment_id == fo.id and outcome.state is Status.PENDING
    assert outcome.fields["location_id"] == 2 and outcome.fields["ready_at"] is None
    assert (moves(outcome, MoveKind.RELEASE), moves(outcome, MoveKind.RESTOCK)) == (3, 2)
    assert {m.location_id for m in outcome.moves} == {1}  # given back where it was
    assert [c.picked for c in outcome.lines] == [-2]
    assert [e.type.value for e in outcome.events] == ["fulfillment.moved"]
    assert outcome.events[0].data["from_location"] == "S1" and outcome.events[0].data["units_restocked"] == 2
    [ask] = plan.asks
    assert (ask.pickup, ask.location, ask.units, ask.joining) == (fo.id, "S2", {A: 3, B: 2}, {})
    assert plan.fields.pickup_location == "S2" and plan.totals_after == plan.totals_before


def test_a_pickup_with_units_handed_over_or_a_transfer_on_the_road_stays():
    handed = fulfillment(Status.READY_FOR_PICKUP)
    handed = replace(handed, lines=(replace(handed.lines[0], picked=3, handed_over=1), handed.lines[1]))
    assert plan_change(state(handed), [MovePickup("S2")], CTX).decisions[0].reason == "already_handed_over"
    fo = fulfillment()
    transfer = Fulfillment(
        uuid.uuid4(), Status.SHIPPED, Method.TRANSFER, 3, "WH", (Line(uuid.uuid4(), A, "A", 1),), feeds=fo.id
    )
    order = state(fo)
    order = replace(order, order=Order("placed", (fo, transfer), order.order.lines))
    assert plan_change(order, [MovePickup("S2")], CTX).decisions[0].reason == "in_transfer"


def test_moving_to_the_store_it_is_at_sources_only_what_it_waits_for():
    fo = fulfillment()
    assert plan_change(state(fo), [MovePickup("S1")], CTX).decisions[0].reason == "already_at_location"
    plan = plan_change(state(fo, unsourced_a=2), [MovePickup("S1")], CTX)
    assert plan.accepted and plan.outcomes == ()
    [ask] = plan.asks
    assert (ask.pickup, ask.units, ask.joining) == (fo.id, {A: 2}, {A: 2})
    assert [(c.order_line_id, c.unsourced) for c in plan.order_lines] == [(A, -2)]


def test_a_pickup_whose_store_let_it_go_is_placed_new_at_the_chosen_store():
    rejected = replace(fulfillment(Status.REJECTED), lines=())
    plan = plan_change(state(rejected, unsourced_a=3), [MovePickup("S2")], CTX)
    [ask] = plan.asks
    assert (ask.pickup, ask.location, ask.units) == (None, "S2", {A: 3})


def test_switching_to_shipping_cancels_the_pickup_before_picking_and_ships_its_units():
    fo = fulfillment()
    plan = plan_change(state(fo), [CancelLine(B, 1), SwitchToShip(ADDRESS)], CTX)
    assert plan.accepted
    [outcome] = plan.outcomes
    assert outcome.state is Status.CANCELLED and moves(outcome, MoveKind.RELEASE) == 5
    [ask] = plan.asks
    assert (ask.method, ask.units, ask.address) == (Method.SHIP, {A: 3, B: 1}, ADDRESS)
    assert (plan.fields.method, plan.fields.address) == (Method.SHIP, ADDRESS)
    picking = plan_change(state(fulfillment(Status.PICKING, picked=1)), [SwitchToShip(ADDRESS)], CTX)
    assert picking.decisions[0].reason == "already_picked"


def test_switching_to_pickup_needs_a_shipment_and_a_store_that_offers_pickup():
    parcel = fulfillment(method=Method.SHIP)
    plan = plan_change(state(parcel, method=Method.SHIP), [SwitchToPickup("S2")], CTX)
    [ask] = plan.asks
    assert (ask.method, ask.location, ask.units) == (Method.PICKUP, "S2", {A: 3, B: 2})
    assert plan.outcomes[0].state is Status.CANCELLED
    refused = plan_change(state(parcel, method=Method.SHIP), [SwitchToPickup("WH")], CTX)
    assert refused.decisions[0].reason == "location_does_not_offer_pickup"
    assert plan_change(state(fulfillment()), [SwitchToPickup("S2")], CTX).decisions[0].reason == "not_a_shipment"


def test_one_placement_per_change():
    plan = plan_change(state(fulfillment()), [MovePickup("S2"), SwitchToShip(ADDRESS)], CTX)
    assert [d.reason for d in plan.decisions] == [None, "one_placement_per_change"]
    assert plan.asks == () and plan.outcomes == ()


def test_an_added_line_is_priced_as_sent_and_joins_a_move():
    added = AddLine(uuid.uuid4(), "C", 2, 750)
    plan = plan_change(state(fulfillment()), [added, MovePickup("S2")], CTX)
    assert plan.totals_after.subtotal == plan.totals_before.subtotal + 1500
    [ask] = plan.asks
    assert ask.units == {A: 3, B: 2, added.line_id: 2} and ask.joining == {added.line_id: 2}
    shipped = plan_change(state(fulfillment(method=Method.SHIP), method=Method.SHIP), [added], CTX)
    [ask] = shipped.asks
    assert (ask.method, ask.pickup, ask.units) == (Method.SHIP, None, {added.line_id: 2})


def test_an_order_paid_in_store_does_not_switch_to_shipping():
    paid_in_store = replace(state(fulfillment()), pays_at_counter=True)
    assert plan_change(paid_in_store, [SwitchToShip(ADDRESS)], CTX).decisions[0].reason == "paid_in_store"
