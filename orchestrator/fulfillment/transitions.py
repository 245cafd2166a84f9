"""What each action does to a fulfillment: ``transition(fulfillment, order, request, context)``
checks the state machine and the request, and returns the ``Outcome`` the service persists.
``order_transitions.py`` does the same for a whole order. Pure: no database, no clock of
its own; the service loads the snapshots (reservations and hold days included) beforehand."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace

from orchestrator.fulfillment.effects import Effects
from orchestrator.fulfillment.model import Fulfillment, Line, MoveKind, Order, Outcome, Shortage, StockMove, next_state
from orchestrator.fulfillment.pickup import code_matches, pickup_code, pickup_deadline, reminder_at
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
    TransitionRequest,
)
from orchestrator.order_record.states import OPEN_STATES, Method, Status
from orchestrator.platform.errors import Conflict, InvalidRequest, PickupLocked, WrongPickupCode
from orchestrator.platform.events import EventType

EXPIRY_REASON = "not collected by the pickup deadline"
NOTHING_FOUND = "short pick: nothing found"


# --- The transitions ----------------------------------------------------------------------------


def transition(fo: Fulfillment, order: Order, request: TransitionRequest, ctx: Context) -> Outcome:
    """The outcome of ``request`` on ``fo``; IllegalTransition naming what is allowed instead."""
    target = next_state(fo.status, fo.method, request.action)
    fx = Effects(fo)
    match request:
        case Accept():
            fx.event(EventType.FULFILLMENT_ACCEPTED)
        case StartPicking():
            fx.event(EventType.FULFILLMENT_PICKING_STARTED)
        case Reject(reason=reason):
            _close_and_resource(fx, order, reason)
            fx.event(EventType.FULFILLMENT_REJECTED, {"reason": reason})
        case Pick(found=found):
            target = _pick(fx, found)
        case MarkReady():
            _mark_ready(fx, order, ctx)
        case Pack():
            _all_picked(fx.lines)
            fx.event(EventType.FULFILLMENT_PACKED)
        case Ship(carrier=carrier, tracking_number=tracking_number):
            fx.fields.update(carrier=carrier, tracking_number=tracking_number, shipped_at=ctx.now)
            if fo.method is Method.SHIP:
                _fulfil(fx, {ln.id: ln.waiting for ln in fx.lines})
            fx.event(EventType.FULFILLMENT_SHIPPED, {"carrier": carrier, "tracking_number": tracking_number})
        case Deliver():
            _deliver(fx, order)
        case HandOver():
            return _hand_over(fx, request, ctx)
        case Cancel(reason=reason) if fo.method is Method.TRANSFER:
            # Without this transfer the pickup store is short: treat it as a rejection.
            target = Status.REJECTED
            _close_and_resource(fx, order, reason)
            fx.event(EventType.FULFILLMENT_REJECTED, {"reason": reason})
        case Cancel(reason=reason):
            _cancel(fx, order, reason)
            fx.event(EventType.FULFILLMENT_CANCELLED, {"reason": reason})
        case Expire():
            if fo.pickup_deadline is None or ctx.now < fo.pickup_deadline:
                raise NotDue()
            # Picked goods go back on the shelf, the lines are cancelled: a cancellation that
            # says it in its own words.
            _cancel(fx, order, EXPIRY_REASON)
            deadline = fo.pickup_deadline.isoformat()
            fx.event(EventType.FULFILLMENT_EXPIRED, {"reason": EXPIRY_REASON, "pickup_deadline": deadline})
        case Remind(ahead=ahead):
            if (
                fo.reminder_sent_at is not None
                or fo.pickup_deadline is None
                or fo.ready_at is None
                or ctx.now < reminder_at(fo.pickup_deadline, ahead, fo.ready_at)
            ):
                raise NotDue()
            fx.fields["reminder_sent_at"] = ctx.now
            fx.event(EventType.FULFILLMENT_PICKUP_REMINDER, {"pickup_deadline": fo.pickup_deadline.isoformat()})
    return fx.outcome(target)


def _pick(fx: Effects, found: Mapping[uuid.UUID, int]) -> Status:
    """Only units reserved here can be picked (units still on a transfer cannot). The missing
    units are released, written off the shelf count (or the next order is promised them) and
    sourced elsewhere; a pick that finds nothing at all takes this location out of the order."""
    by_id = {ln.id: ln for ln in fx.fo.lines}
    unknown = [str(i) for i in found if i not in by_id]
    if unknown:
        raise InvalidRequest(f"not lines of this fulfillment: {', '.join(unknown)}", field="lines")
    kind = MoveKind.TRANSFER_OUT if fx.fo.method is Method.TRANSFER else MoveKind.PICK
    picked, short = [], []
    for line_id, units in found.items():
        line = by_id[line_id]
        here = line.reserved_here
        if units < 0 or units > here:
            raise InvalidRequest(f"line {line_id}: picked {units}, but {here} are to pick here", field="lines")
        if units:
            fx.move(kind, line, units)
            fx.change(line, picked=units)
            picked.append({"sku": line.sku, "quantity": units})
        missing = here - units
        if missing:
            fx.move(MoveKind.RELEASE, line, missing, "short pick")
            fx.move(MoveKind.WRITE_OFF, line, missing, "short pick: not found on the shelf")
            fx.change(line, cancelled=missing)
            fx.shortages.append(Shortage(line.id, missing))
            short.append({"sku": line.sku, "missing": missing})
    fx.event(EventType.FULFILLMENT_PICKED, {"picked": picked, "short": short})
    if short and all(ln.picked == 0 and ln.cancelled == ln.quantity for ln in fx.lines):
        fx.fields["close_reason"] = NOTHING_FOUND
        fx.event(EventType.FULFILLMENT_REJECTED, {"reason": NOTHING_FOUND})
        return Status.REJECTED
    return Status.PICKING


def _all_picked(lines: list[Line]) -> None:
    pending = [ln.sku for ln in lines if ln.picked + ln.cancelled < ln.quantity]
    if pending:
        raise Conflict(f"lines still to pick: {', '.join(pending)}", unpicked=pending)
    if not any(ln.picked for ln in lines):
        raise Conflict("nothing was picked")


def _mark_ready(fx: Effects, order: Order, ctx: Context) -> None:
    waiting = [
        str(f.id)
        for f in order.transfers_feeding(fx.fo)
        if f.status not in {Status.DELIVERED, Status.CANCELLED, Status.REJECTED}
    ]
    if waiting:
        raise Conflict("transfers to this store have not all arrived", transfers=waiting)
    _all_picked(fx.lines)
    assert fx.fo.pickup_hold_days is not None, "the service loads the hold days to mark a pickup ready"
    # The first ready issues the code. A pickup ready again (it moved to another store) keeps the
    # code its customer holds: they show it at the new store.
    issue = fx.fo.pickup_code_issue or 1
    deadline = pickup_deadline(ctx.now, fx.fo.pickup_hold_days)
    fx.fields.update(
        pickup_code_issue=issue,
        ready_at=ctx.now,
        pickup_deadline=deadline,
        pickup_failed_attempts=0,
        pickup_locked_until=None,
        reminder_sent_at=None,
    )
    fx.event(
        EventType.FULFILLMENT_READY_FOR_PICKUP,
        {"pickup_deadline": deadline.isoformat()},
        private={"pickup_code": pickup_code(ctx.secret, fx.fo.id, issue)},
    )


def _fulfil(fx: Effects, units: Mapping[uuid.UUID, int]) -> None:
    """Units reach the customer: handed over here, fulfilled on the order line."""
    for line in fx.lines:
        qty = units.get(line.id, 0)
        if qty:
            fx.change(line, handed_over=qty)
            fx.change_order_line(line.order_line_id, fulfilled=qty)


def _deliver(fx: Effects, order: Order) -> None:
    if fx.fo.method is not Method.TRANSFER:
        fx.event(EventType.FULFILLMENT_DELIVERED)
        return
    assert fx.fo.feeds is not None
    pickup = order.fulfillment(fx.fo.feeds)
    pickup_lines = {ln.order_line_id: ln for ln in pickup.lines}
    for line in fx.lines:
        arrived = line.waiting
        if arrived:
            # Received into the pickup store's stock and reserved there for the pickup line.
            fx.moves.append(
                StockMove(MoveKind.RECEIVE_TRANSFER, pickup_lines[line.order_line_id].id, pickup.location_id, arrived)
            )
            fx.change(line, handed_over=arrived)
    fx.event(EventType.FULFILLMENT_TRANSFER_RECEIVED, {"destination": pickup.location})


def _hand_over(fx: Effects, request: HandOver, ctx: Context) -> Outcome:
    fo, guard = fx.fo, ctx.guard
    if request.override_reason is None:
        if guard.is_locked(fo.pickup_locked_until, ctx.now):
            raise PickupLocked(
                "too many wrong pickup codes; try again later",
                locked_until=fo.pickup_locked_until.isoformat() if fo.pickup_locked_until else None,
            )
        if not code_matches(ctx.secret, fo.id, fo.pickup_code_issue, request.code):
            # Counted and committed, then refused: guessing must not be free.
            failures, locked_until = guard.after_failure(fo.pickup_failed_attempts, ctx.now)
            fx.fields.update(pickup_failed_attempts=failures, pickup_locked_until=locked_until)
            fx.event(
                EventType.FULFILLMENT_PICKUP_CODE_REJECTED,
                {"locked_until": locked_until.isoformat() if locked_until else None},
            )
            error = (
                PickupLocked("too many wrong pickup codes; pickup locked", locked_until=locked_until.isoformat())
                if locked_until
                else WrongPickupCode("wrong pickup code", field="code")
            )
            return fx.outcome(fo.status, error_after_commit=error)
    elif not (ctx.actor.is_staff or ctx.actor.is_admin):
        raise InvalidRequest("only staff or an admin may hand over without the code", field="override_reason")

    remaining = {ln.id: ln.waiting for ln in fo.lines}
    wanted = remaining if request.units is None else request.units
    for line_id, qty in wanted.items():
        if line_id not in remaining:
            raise InvalidRequest(f"not a line of this fulfillment: {line_id}", field="lines")
        if qty < 0 or qty > remaining[line_id]:
            raise InvalidRequest(f"line {line_id}: {qty} requested, {remaining[line_id]} ready", field="lines")
    if not any(wanted.values()):
        raise InvalidRequest("nothing to hand over", field="lines")
    _fulfil(fx, wanted)
    fx.fields["pickup_failed_attempts"] = 0
    data = {
        "handed_over": [{"sku": ln.sku, "quantity": wanted[ln.id]} for ln in fo.lines if wanted.get(ln.id)],
        "override_reason": request.override_reason,
    }
    if any(ln.waiting for ln in fx.lines):
        # The rest stays ready for the customer to collect.
        fx.event(EventType.FULFILLMENT_PARTIALLY_PICKED_UP, data)
        return fx.outcome(Status.READY_FOR_PICKUP)
    fx.event(EventType.FULFILLMENT_PICKED_UP, data)
    return fx.outcome(Status.PICKED_UP)


def _give_back(fx: Effects, line: Line, reason: str) -> None:
    """Release what the line holds reserved; picked-but-not-handed units go back on the shelf."""
    fx.move(MoveKind.RELEASE, line, line.reserved, reason)
    fx.move(MoveKind.RESTOCK, line, line.waiting, reason)


def _close_and_resource(fx: Effects, order: Order, reason: str) -> None:
    """Give back everything this fulfillment holds and send its open and picked-not-handed units
    elsewhere (picked ones go back to this shelf first)."""
    fx.fields["close_reason"] = reason
    for line in fx.fo.lines:
        _give_back(fx, line, reason)
        moving = line.open + line.waiting
        fx.change(line, cancelled=moving, picked=-line.waiting)
        if moving:
            fx.shortages.append(Shortage(line.id, moving))
    cancel_feeders(fx, order, f"pickup {fx.fo.id} closed")


def _cancel(fx: Effects, order: Order, reason: str) -> None:
    """Everything not with the customer is cancelled here and on the order lines."""
    fx.fields["close_reason"] = reason
    for line in fx.fo.lines:
        _give_back(fx, line, reason)
        left = line.quantity - line.cancelled - line.handed_over
        fx.change(line, cancelled=left, picked=-line.waiting)
        fx.change_order_line(line.order_line_id, cancelled=left)
    cancel_feeders(fx, order, reason)


def cancel_feeders(fx: Effects, order: Order, reason: str) -> None:
    """Transfers still carrying stock to a pickup that closes (or moves) are cancelled with it:
    reservations released, picked units back on their shelves, their events with the pickup's."""
    for feeder in order.transfers_feeding(fx.fo):
        if feeder.status not in OPEN_STATES | {Status.SHIPPED}:
            continue
        closing = Effects(feeder, fields={"close_reason": reason})
        for line in feeder.lines:
            _give_back(closing, line, reason)
            closing.change(line, cancelled=line.quantity - line.handed_over - line.cancelled, picked=-line.waiting)
        closing.event(EventType.FULFILLMENT_CANCELLED, {"reason": reason})
        fx.events.extend(closing.events)
        fx.closed.append(replace(closing.outcome(Status.CANCELLED), events=()))
