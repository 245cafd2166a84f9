"""The fulfillment rules, decided on plain snapshots: no database, no clock, no HTTP."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.fulfillment.model import (
    Fulfillment,
    Line,
    LineChange,
    MoveKind,
    Order,
    OrderLine,
    OrderLineChange,
    Outcome,
    Shortage,
    ShortageTrigger,
    StockMove,
)
from orchestrator.fulfillment.order_transitions import arrive, cancel_order
from orchestrator.fulfillment.pickup import PickupGuard, pickup_code
from orchestrator.fulfillment.requests import (
    Accept,
    Cancel,
    Context,
    Deliver,
    Expire,
    HandOver,
    MarkReady,
    NotDue,
    Pack,
    Pick,
    Reject,
    Remind,
    Ship,
    StartPicking,
)
from orchestrator.fulfillment.transitions import transition
from orchestrator.order_record.states import Method, Status
from orchestrator.platform.actors import Actor
from orchestrator.platform.errors import (
    Conflict,
    IllegalTransition,
    InvalidRequest,
    OrderNotCancellable,
    PickupLocked,
    WrongPickupCode,
)
from orchestrator.platform.events import EventType

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SECRET = "unit-secret"
STAFF = Actor(kind="staff", id="ann", locations=frozenset({"S1", "S2"}))
CHANNEL = Actor(kind="channel", id="web", channel="web")
STORE, OTHER = 1, 2
OL1, OL2 = uuid.uuid4(), uuid.uuid4()


DEFAULT_GUARD = PickupGuard()


def ctx(actor: Actor = STAFF, now: datetime = NOW, guard: PickupGuard = DEFAULT_GUARD) -> Context:
    return Context(actor, now, SECRET, guard)


def line(order_line_id: uuid.UUID = OL1, quantity: int = 3, **quantities: int) -> Line:
    sku = "A" if order_line_id == OL1 else "B"
    return Line(uuid.uuid4(), order_line_id, sku, quantity, **quantities)


def fulfillment(status: Status, *lines: Line, method: Method = Method.PICKUP, **fields: object) -> Fulfillment:
    return Fulfillment(
        uuid.uuid4(), status, method, STORE, "S1", lines or (line(reserved=3, reserved_here=3),), **fields
    )  # type: ignore[arg-type]


def order(*fulfillments: Fulfillment, lines: tuple[OrderLine, ...] = (), status: str = "in_progress") -> Order:
    return Order(status, fulfillments, lines or (OrderLine(OL1, "A", 3), OrderLine(OL2, "B", 2)))


def decide(fo: Fulfillment, request: object, *, context: Context | None = None, siblings: tuple = ()) -> Outcome:
    return transition(fo, order(fo, *siblings), request, context or ctx())  # type: ignore[arg-type]


def events(outcome: Outcome) -> list[str]:
    return [e.type.value for e in outcome.events]


def ready_pickup(*lines: Line, **fields: object) -> Fulfillment:
    fields = {"pickup_code_issue": 1, "ready_at": NOW - timedelta(days=1), **fields}
    return fulfillment(Status.READY_FOR_PICKUP, *(lines or (line(picked=3),)), **fields)


def code_of(fo: Fulfillment) -> str:
    return pickup_code(SECRET, fo.id, fo.pickup_code_issue)


# --- pick ---------------------------------------------------------------------------------------


def test_short_pick_releases_and_writes_off_the_missing_units_and_resources_them() -> None:
    ln = line(reserved=3, reserved_here=3)
    fo = fulfillment(Status.PICKING, ln)
    outcome = decide(fo, Pick({ln.id: 1}))
    assert outcome.state is Status.PICKING
    assert outcome.moves == (
        StockMove(MoveKind.PICK, ln.id, STORE, 1),
        StockMove(MoveKind.RELEASE, ln.id, STORE, 2, "short pick"),
        StockMove(MoveKind.WRITE_OFF, ln.id, STORE, 2, "short pick: not found on the shelf"),
    )
    assert outcome.lines == (LineChange(ln.id, picked=1, cancelled=2),)
    assert outcome.shortages == (Shortage(ln.id, 2),)
    assert outcome.trigger is ShortageTrigger.SHORT_PICK
    (picked,) = outcome.events
    assert picked.type is EventType.FULFILLMENT_PICKED
    assert picked.data["picked"] == [{"sku": "A", "quantity": 1}]
    assert picked.data["short"] == [{"sku": "A", "missing": 2}]


def test_a_transfer_pick_moves_the_units_out_onto_the_transfer() -> None:
    ln = line(reserved=3, reserved_here=3)
    outcome = decide(fulfillment(Status.PICKING, ln, method=Method.TRANSFER), Pick({ln.id: 3}))
    assert outcome.moves == (StockMove(MoveKind.TRANSFER_OUT, ln.id, STORE, 3),)
    assert outcome.shortages == ()


def test_a_pick_that_finds_nothing_rejects_the_fulfillment_and_resources_everything() -> None:
    ln = line(reserved=3, reserved_here=3)
    outcome = decide(fulfillment(Status.PICKING, ln), Pick({ln.id: 0}))
    assert outcome.state is Status.REJECTED
    assert outcome.fields["close_reason"] == "short pick: nothing found"
    assert events(outcome) == ["fulfillment.picked", "fulfillment.rejected"]
    assert outcome.shortages == (Shortage(ln.id, 3),)
    assert outcome.trigger is ShortageTrigger.REJECTION


def test_only_units_reserved_here_can_be_picked() -> None:
    # Two units are still travelling on a transfer: reserved, but not at this store.
    ln = line(reserved=3, reserved_here=1)
    with pytest.raises(InvalidRequest, match="1 are to pick here"):
        decide(fulfillment(Status.PICKING, ln), Pick({ln.id: 2}))
    with pytest.raises(InvalidRequest, match="not lines of this fulfillment"):
        decide(fulfillment(Status.PICKING, ln), Pick({uuid.uuid4(): 1}))


# --- handover -----------------------------------------------------------------------------------


def test_a_partial_handover_stays_ready_for_pickup() -> None:
    ln = line(picked=3)
    fo = ready_pickup(ln)
    outcome = decide(fo, HandOver(code=code_of(fo), units={ln.id: 1}))
    assert outcome.state is Status.READY_FOR_PICKUP
    assert outcome.lines == (LineChange(ln.id, handed_over=1),)
    assert outcome.order_lines == (OrderLineChange(OL1, fulfilled=1),)
    assert events(outcome) == ["fulfillment.partially_picked_up"]


def test_a_full_handover_is_picked_up_and_fulfils_the_order_lines() -> None:
    a, b = line(OL1, 3, picked=3, handed_over=1), line(OL2, 2, picked=2)
    fo = ready_pickup(a, b)
    outcome = decide(fo, HandOver(code=code_of(fo)))
    assert outcome.state is Status.PICKED_UP
    assert outcome.order_lines == (OrderLineChange(OL1, fulfilled=2), OrderLineChange(OL2, fulfilled=2))
    assert outcome.lines == (LineChange(a.id, handed_over=2), LineChange(b.id, handed_over=2))
    assert outcome.events[0].data["handed_over"] == [{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 2}]
    assert outcome.fields["pickup_failed_attempts"] == 0


def test_a_wrong_code_is_counted_keeps_the_state_and_is_refused_after_commit() -> None:
    fo = ready_pickup(pickup_failed_attempts=1)
    outcome = decide(fo, HandOver(code="000000" if code_of(fo) != "000000" else "111111"))
    assert outcome.state is Status.READY_FOR_PICKUP
    assert outcome.fields == {"pickup_failed_attempts": 2, "pickup_locked_until": None}
    assert outcome.lines == () and outcome.order_lines == ()
    assert events(outcome) == ["fulfillment.pickup_code_rejected"]
    assert isinstance(outcome.error_after_commit, WrongPickupCode)


def test_the_nth_wrong_code_locks_the_pickup() -> None:
    guard = PickupGuard(max_failures=3, lockout=timedelta(minutes=10))
    fo = ready_pickup(pickup_failed_attempts=2)
    outcome = decide(fo, HandOver(code="not-it"), context=ctx(guard=guard))
    assert outcome.fields == {"pickup_failed_attempts": 0, "pickup_locked_until": NOW + timedelta(minutes=10)}
    assert isinstance(outcome.error_after_commit, PickupLocked)
    # While locked even the right code is refused at once, and nothing is counted.
    locked = replace(fo, pickup_locked_until=NOW + timedelta(minutes=10))
    with pytest.raises(PickupLocked):
        decide(locked, HandOver(code=code_of(locked)), context=ctx(guard=guard))


def test_a_handover_without_the_code_needs_staff_or_an_admin() -> None:
    fo = ready_pickup()
    with pytest.raises(InvalidRequest, match="only staff or an admin"):
        decide(fo, HandOver(override_reason="id checked"), context=ctx(actor=CHANNEL))
    outcome = decide(fo, HandOver(override_reason="id checked"))
    assert outcome.state is Status.PICKED_UP
    assert outcome.events[0].data["override_reason"] == "id checked"


# --- ready, pack, ship, deliver -----------------------------------------------------------------


def test_ready_requires_every_line_picked() -> None:
    fo = fulfillment(Status.PICKING, line(picked=2), pickup_hold_days=3)
    with pytest.raises(Conflict, match="lines still to pick: A"):
        decide(fo, MarkReady())


def test_ready_waits_for_every_feeding_transfer_to_arrive() -> None:
    pickup = fulfillment(Status.PICKING, line(picked=3), pickup_hold_days=3)
    transfer = replace(fulfillment(Status.SHIPPED, method=Method.TRANSFER), location_id=OTHER, feeds=pickup.id)
    with pytest.raises(Conflict, match="transfers to this store have not all arrived"):
        decide(pickup, MarkReady(), siblings=(transfer,))
    arrived = decide(pickup, MarkReady(), siblings=(replace(transfer, status=Status.DELIVERED),))
    assert arrived.state is Status.READY_FOR_PICKUP


def test_ready_issues_the_code_once_and_a_deadline_from_the_hold_days() -> None:
    first = decide(fulfillment(Status.PICKING, line(picked=3), pickup_hold_days=3), MarkReady())
    assert first.fields["pickup_code_issue"] == 1
    # Ready again after the pickup moved to another store: the customer's code stays valid there.
    fo = fulfillment(Status.PICKING, line(picked=3), pickup_hold_days=3, pickup_code_issue=2, pickup_failed_attempts=4)
    outcome = decide(fo, MarkReady())
    assert outcome.state is Status.READY_FOR_PICKUP
    assert outcome.fields == {
        "pickup_code_issue": 2,
        "ready_at": NOW,
        "pickup_deadline": NOW + timedelta(days=3),
        "pickup_failed_attempts": 0,
        "pickup_locked_until": None,
        "reminder_sent_at": None,
    }
    (ready,) = outcome.events
    assert ready.data["pickup_deadline"] == (NOW + timedelta(days=3)).isoformat()
    assert ready.private == {"pickup_code": pickup_code(SECRET, fo.id, 2)}
    assert "pickup_code" not in ready.data


def test_pack_needs_something_picked_and_ship_fulfils_a_shipment() -> None:
    with pytest.raises(Conflict, match="nothing was picked"):
        decide(fulfillment(Status.PICKING, line(cancelled=3), method=Method.SHIP), Pack())
    ln = line(picked=3)
    assert decide(fulfillment(Status.PICKING, ln, method=Method.SHIP), Pack()).state is Status.PACKED
    shipped = decide(fulfillment(Status.PACKED, ln, method=Method.SHIP), Ship("DHL", "T1"))
    assert shipped.state is Status.SHIPPED
    assert shipped.fields == {"carrier": "DHL", "tracking_number": "T1", "shipped_at": NOW}
    assert shipped.order_lines == (OrderLineChange(OL1, fulfilled=3),)
    assert shipped.events[0].data["tracking_number"] == "T1"


def test_shipping_a_transfer_fulfils_nothing_on_the_order() -> None:
    shipped = decide(fulfillment(Status.PACKED, line(picked=3), method=Method.TRANSFER), Ship("van", "V1"))
    assert shipped.order_lines == () and shipped.lines == ()


def test_a_delivered_transfer_is_received_into_stock_at_the_pickup_store() -> None:
    pickup_line = line(reserved=1, reserved_here=1)
    pickup = replace(fulfillment(Status.PICKING, pickup_line), location_id=OTHER, location="S2")
    ln = line(quantity=2, picked=2)
    transfer = replace(fulfillment(Status.SHIPPED, ln, method=Method.TRANSFER), feeds=pickup.id)
    outcome = decide(transfer, Deliver(), siblings=(pickup,))
    assert outcome.state is Status.DELIVERED
    assert outcome.moves == (StockMove(MoveKind.RECEIVE_TRANSFER, pickup_line.id, OTHER, 2),)
    assert outcome.lines == (LineChange(ln.id, handed_over=2),)
    assert outcome.events[0].type is EventType.FULFILLMENT_TRANSFER_RECEIVED
    assert outcome.events[0].data["destination"] == "S2"


# --- reject, cancel, expire ---------------------------------------------------------------------


def test_reject_resources_the_open_and_the_picked_but_not_handed_units() -> None:
    ln = line(quantity=5, picked=2, cancelled=1, reserved=2, reserved_here=2)
    outcome = decide(fulfillment(Status.PICKING, ln), Reject("closed early"))
    assert outcome.state is Status.REJECTED
    assert outcome.moves == (
        StockMove(MoveKind.RELEASE, ln.id, STORE, 2, "closed early"),
        StockMove(MoveKind.RESTOCK, ln.id, STORE, 2, "closed early"),
    )
    assert outcome.lines == (LineChange(ln.id, picked=-2, cancelled=4),)
    assert outcome.shortages == (Shortage(ln.id, 4),)
    assert outcome.trigger is ShortageTrigger.REJECTION
    assert outcome.fields["close_reason"] == "closed early"
    assert events(outcome) == ["fulfillment.rejected"]


def test_cancelling_a_transfer_rejects_it_and_resources_its_units() -> None:
    ln = line(reserved=3, reserved_here=3)
    outcome = decide(fulfillment(Status.ACCEPTED, ln, method=Method.TRANSFER), Cancel("van broke down"))
    assert outcome.state is Status.REJECTED
    assert outcome.shortages == (Shortage(ln.id, 3),)
    assert events(outcome) == ["fulfillment.rejected"]
    assert outcome.order_lines == ()


def test_cancel_releases_restocks_cancels_the_order_lines_and_the_feeding_transfers() -> None:
    ln = line(quantity=3, picked=1, reserved=2, reserved_here=2)
    pickup = fulfillment(Status.PICKING, ln)
    feeding = line(quantity=2, picked=2)
    transfer = replace(
        fulfillment(Status.SHIPPED, feeding, method=Method.TRANSFER), location_id=OTHER, location="S2", feeds=pickup.id
    )
    outcome = decide(pickup, Cancel("customer asked"), siblings=(transfer,))
    assert outcome.state is Status.CANCELLED
    assert outcome.moves == (
        StockMove(MoveKind.RELEASE, ln.id, STORE, 2, "customer asked"),
        StockMove(MoveKind.RESTOCK, ln.id, STORE, 1, "customer asked"),
    )
    assert outcome.lines == (LineChange(ln.id, picked=-1, cancelled=3),)
    assert outcome.order_lines == (OrderLineChange(OL1, cancelled=3),)
    assert outcome.shortages == ()
    (closed,) = outcome.closed
    assert closed.fulfillment_id == transfer.id and closed.state is Status.CANCELLED
    assert closed.moves == (StockMove(MoveKind.RESTOCK, feeding.id, OTHER, 2, "customer asked"),)
    assert closed.lines == (LineChange(feeding.id, picked=-2, cancelled=2),)
    # The transfer's cancellation is told first, then the pickup's own.
    assert [(e.type.value, e.data["fulfillment_id"]) for e in outcome.events] == [
        ("fulfillment.cancelled", str(transfer.id)),
        ("fulfillment.cancelled", str(pickup.id)),
    ]


def test_expiry_restocks_cancels_the_lines_and_says_only_expired() -> None:
    ln = line(picked=3, reserved=0)
    fo = ready_pickup(ln, pickup_deadline=NOW - timedelta(minutes=1))
    outcome = decide(fo, Expire())
    assert outcome.state is Status.EXPIRED
    assert outcome.moves == (StockMove(MoveKind.RESTOCK, ln.id, STORE, 3, "not collected by the pickup deadline"),)
    assert outcome.order_lines == (OrderLineChange(OL1, cancelled=3),)
    assert events(outcome) == ["fulfillment.expired"]
    assert outcome.events[0].data["pickup_deadline"] == fo.pickup_deadline.isoformat()  # type: ignore[union-attr]


def test_expiry_and_reminder_before_they_are_due_do_nothing() -> None:
    fo = ready_pickup(pickup_deadline=NOW + timedelta(hours=30))
    with pytest.raises(NotDue):
        decide(fo, Expire())
    with pytest.raises(NotDue):
        decide(fo, Remind(timedelta(hours=24)))
    reminded = decide(fo, Remind(timedelta(hours=31)))
    assert reminded.state is Status.READY_FOR_PICKUP
    assert reminded.fields == {"reminder_sent_at": NOW}
    assert events(reminded) == ["fulfillment.pickup_reminder"]
    with pytest.raises(NotDue):
        decide(replace(fo, reminder_sent_at=NOW), Remind(timedelta(hours=31)))


# --- the state machine, and whole orders --------------------------------------------------------


def test_an_illegal_transition_lists_the_allowed_actions_and_decides_nothing() -> None:
    with pytest.raises(IllegalTransition) as caught:
        decide(fulfillment(Status.PENDING), HandOver(code="123456"))
    assert set(caught.value.allowed) == {"accept", "reject", "cancel"}
    assert decide(fulfillment(Status.PENDING), Accept()).state is Status.ACCEPTED
    assert events(decide(fulfillment(Status.ACCEPTED), StartPicking())) == ["fulfillment.picking_started"]


def test_every_event_names_the_fulfillment_its_location_and_method() -> None:
    fo = fulfillment(Status.PENDING, method=Method.CURBSIDE)
    (accepted,) = decide(fo, Accept()).events
    assert accepted.data == {"fulfillment_id": str(fo.id), "location": "S1", "method": "curbside"}


def test_cancelling_an_order_cancels_every_open_fulfillment_and_whatever_is_unfulfilled() -> None:
    pickup = fulfillment(Status.ACCEPTED, line(OL1, 3, reserved=3))
    done = fulfillment(Status.REJECTED, line(OL2, 2, cancelled=2))
    lines = (OrderLine(OL1, "A", 3), OrderLine(OL2, "B", 2, unsourced=2))
    outcome = cancel_order(order(pickup, done, lines=lines), "customer asked", ctx())
    assert [o.fulfillment_id for o in outcome.fulfillments] == [pickup.id]
    # The pickup's cancel already cancels OL1's 3; the order adds what is left, and clears unsourced.
    assert outcome.fulfillments[0].order_lines == (OrderLineChange(OL1, cancelled=3),)
    assert outcome.order_lines == (OrderLineChange(OL1), OrderLineChange(OL2, cancelled=2, unsourced=-2))
    assert [e.type.value for e in outcome.events] == ["order.cancelled"]


def test_cancelling_an_order_partly_with_the_customer_cancels_the_rest_and_keeps_what_was_handed_over() -> None:
    handed = fulfillment(Status.READY_FOR_PICKUP, line(picked=3, handed_over=1))
    shipped = fulfillment(Status.SHIPPED, line(OL2, 2, picked=2, handed_over=2), method=Method.SHIP)
    lines = (OrderLine(OL1, "A", 3, fulfilled=1), OrderLine(OL2, "B", 2, fulfilled=2))
    outcome = cancel_order(order(handed, shipped, lines=lines), "customer asked", ctx())
    [cancelled] = outcome.fulfillments
    assert (cancelled.fulfillment_id, cancelled.state) == (handed.id, Status.CANCELLED)
    # The two picked but not handed-over units go back on the shelf; the handed-over one stays.
    assert cancelled.lines == (LineChange(handed.lines[0].id, picked=-2, cancelled=2),)
    assert [(m.kind, m.quantity) for m in cancelled.moves] == [(MoveKind.RESTOCK, 2)]
    assert cancelled.order_lines == (OrderLineChange(OL1, cancelled=2),)
    assert outcome.order_lines == (OrderLineChange(OL1), OrderLineChange(OL2))


def test_an_order_with_nothing_open_or_already_cancelled_cannot_be_cancelled() -> None:
    done = fulfillment(Status.PICKED_UP, line(picked=3, handed_over=3))
    with pytest.raises(OrderNotCancellable, match="nothing of the order is left to cancel"):
        cancel_order(order(done, lines=(OrderLine(OL1, "A", 3, fulfilled=3),)), "x", ctx())
    with pytest.raises(OrderNotCancellable, match="already cancelled"):
        cancel_order(order(fulfillment(Status.CANCELLED), status="cancelled"), "x", ctx())


def test_arrival_marks_every_open_pickup_and_needs_one() -> None:
    pickup = fulfillment(Status.READY_FOR_PICKUP)
    shipment = fulfillment(Status.PICKING, method=Method.SHIP)
    outcome = arrive(order(pickup, shipment), "P4", None, NOW)
    assert [(o.fulfillment_id, o.state) for o in outcome.fulfillments] == [(pickup.id, Status.READY_FOR_PICKUP)]
    assert outcome.fulfillments[0].fields == {"arrived_at": NOW, "arrival": {"parking_spot": "P4", "vehicle": None}}
    assert outcome.events[0].data["locations"] == ["S1"]
    with pytest.raises(Conflict, match="no open pickup"):
        arrive(order(shipment), None, None, NOW)
