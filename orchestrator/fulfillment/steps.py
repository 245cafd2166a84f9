"""The transitions of a fulfillment order, one ``Apply`` each: what a step does to the lines,
the stock and the timeline. ``fulfillment.transition`` runs them inside its transaction."""

from __future__ import annotations

import uuid

from orchestrator.fulfillment.model import OPEN_STATES, Method, Status
from orchestrator.fulfillment.pickup import code_matches, pickup_code, pickup_deadline
from orchestrator.fulfillment.resourcing import Shortage
from orchestrator.fulfillment.service import Apply, Step
from orchestrator.inventory.model import MovementKind
from orchestrator.orders.tables import FulfillmentOrder
from orchestrator.platform.errors import Conflict, InvalidRequest, PickupLocked, WrongPickupCode
from orchestrator.platform.events import OrderEventDraft
from orchestrator.sourcing.service import load_site


async def accept(step: Step) -> None:
    step.say("fulfillment.accepted")


async def start_picking(step: Step) -> None:
    step.say("fulfillment.picking_started")


def reject_with(reason: str) -> Apply:
    async def apply(step: Step) -> None:
        await _close_and_resource(step, reason)
        step.fo.close_reason = reason
        step.say("fulfillment.rejected", {"reason": reason})

    return apply


async def _close_and_resource(step: Step, reason: str) -> None:
    """Give back everything this fulfillment holds and send its open units elsewhere."""
    for line in step.lines:
        open_units = line.quantity - line.quantity_cancelled - line.quantity_picked
        await step.ledger.release_all(line, reason)
        # Picked-but-not-handed units go back to this shelf before they are sourced again.
        step.ledger.restock(step.fo.location_id, line, line.quantity_picked - line.quantity_handed_over, reason)
        moving = open_units + line.quantity_picked - line.quantity_handed_over
        line.quantity_cancelled += moving
        line.quantity_picked = line.quantity_handed_over
        if moving:
            step.shortages.append(Shortage(line, moving))
    for feeder in _transfers_feeding(step):
        await _cancel_fulfillment(step, feeder, f"pickup {step.fo.id} closed")


def _transfers_feeding(step: Step) -> list[FulfillmentOrder]:
    return [
        f
        for f in step.aggregate.fulfillments
        if f.feeds_fulfillment_id == step.fo.id and Status(f.status) in OPEN_STATES | {Status.SHIPPED}
    ]


async def _cancel_fulfillment(step: Step, fo: FulfillmentOrder, reason: str) -> None:
    for line in step.aggregate.fulfillment_lines.get(fo.id, []):
        await step.ledger.release_all(line, reason)
        step.ledger.restock(fo.location_id, line, line.quantity_picked - line.quantity_handed_over, reason)
        line.quantity_cancelled = line.quantity - line.quantity_handed_over
        line.quantity_picked = line.quantity_handed_over
    fo.status = Status.CANCELLED.value
    fo.version += 1
    fo.closed_at = step.now
    fo.close_reason = reason
    fo.updated_at = step.now
    step.drafts.append(
        OrderEventDraft(
            "fulfillment.cancelled",
            {
                "fulfillment_id": str(fo.id),
                "location": step.aggregate.codes[fo.location_id],
                "method": fo.method,
                "reason": reason,
            },
        )
    )


def pick_lines(picks: dict[uuid.UUID, int]) -> Apply:
    """``picks``: fulfillment line id → units found. Fewer than the line needs is a short pick:
    the missing units are released here, written off the shelf count, and sourced elsewhere."""

    async def apply(step: Step) -> None:
        by_id = {line.id: line for line in step.lines}
        unknown = [str(i) for i in picks if i not in by_id]
        if unknown:
            raise InvalidRequest(f"not lines of this fulfillment: {', '.join(unknown)}", field="lines")
        kind = MovementKind.TRANSFER_OUT if step.fo.method == Method.TRANSFER else MovementKind.PICK
        picked, short = [], []
        for line_id, found in picks.items():
            line = by_id[line_id]
            # Only units reserved here can be picked; units still travelling on a transfer cannot.
            here = sum(
                r.quantity
                for r in (await step.ledger.reservations([line.id]))[line.id]
                if r.status == "active" and r.location_id == step.fo.location_id
            )
            if found < 0 or found > here:
                raise InvalidRequest(f"line {line_id}: picked {found}, but {here} are to pick here", field="lines")
            if found:
                await step.ledger.consume(step.fo, line, found, kind)
                line.quantity_picked += found
                picked.append({"sku": line.sku, "quantity": found})
            missing = here - found
            if missing:
                await step.ledger.release(line, missing, "short pick")
                # The units were not on the shelf: write them off, or the next order is promised them.
                step.ledger.write_off(step.fo.location_id, line, missing, "short pick: not found on the shelf")
                line.quantity_cancelled += missing
                step.shortages.append(Shortage(line, missing))
                short.append({"sku": line.sku, "missing": missing})
        step.say("fulfillment.picked", {"picked": picked, "short": short})
        if short and all(line.quantity_picked == 0 and line.quantity_cancelled == line.quantity for line in step.lines):
            # Nothing found at all: this location is out of the order.
            step.target = Status.REJECTED
            step.fo.close_reason = "short pick: nothing found"
            step.say("fulfillment.rejected", {"reason": "short pick: nothing found"})

    return apply


def _all_picked(step: Step) -> None:
    pending = [ln.sku for ln in step.lines if ln.quantity_picked + ln.quantity_cancelled < ln.quantity]
    if pending:
        raise Conflict(f"lines still to pick: {', '.join(pending)}", unpicked=pending)
    if not any(ln.quantity_picked for ln in step.lines):
        raise Conflict("nothing was picked")


async def mark_ready(step: Step) -> None:
    waiting = [
        str(f.id)
        for f in step.aggregate.fulfillments
        if f.feeds_fulfillment_id == step.fo.id
        and Status(f.status) is not Status.DELIVERED
        and Status(f.status) not in {Status.CANCELLED, Status.REJECTED}
    ]
    if waiting:
        raise Conflict("transfers to this store have not all arrived", transfers=waiting)
    _all_picked(step)
    # A new issue, a new code: whatever code this pickup had before no longer opens it.
    step.fo.pickup_code_issue += 1
    code = pickup_code(step.settings.secret, step.fo.id, step.fo.pickup_code_issue)
    step.fo.ready_at = step.now
    hold_days = await _hold_days(step)
    step.fo.pickup_deadline = pickup_deadline(step.now, hold_days)
    step.fo.pickup_failed_attempts = 0
    step.fo.pickup_locked_until = None
    step.fo.reminder_sent_at = None
    step.say(
        "fulfillment.ready_for_pickup",
        {"pickup_deadline": step.fo.pickup_deadline.isoformat()},
        private={"pickup_code": code},
    )


async def _hold_days(step: Step) -> int:
    site = await load_site(step.ledger.session, id=step.fo.location_id)
    assert site is not None
    return site.pickup_hold_days


async def pack(step: Step) -> None:
    _all_picked(step)
    step.say("fulfillment.packed")


def ship_with(carrier: str, tracking_number: str) -> Apply:
    async def apply(step: Step) -> None:
        step.fo.carrier = carrier
        step.fo.tracking_number = tracking_number
        step.fo.shipped_at = step.now
        if step.fo.method == Method.SHIP:
            _fulfil_order_lines(step, {ln.id: ln.quantity_picked - ln.quantity_handed_over for ln in step.lines})
        step.say("fulfillment.shipped", {"carrier": carrier, "tracking_number": tracking_number})

    return apply


def _fulfil_order_lines(step: Step, units: dict[uuid.UUID, int]) -> None:
    order_lines = {ln.id: ln for ln in step.aggregate.lines}
    for line in step.lines:
        qty = units.get(line.id, 0)
        if qty:
            line.quantity_handed_over += qty
            order_lines[line.order_line_id].quantity_fulfilled += qty


async def deliver(step: Step) -> None:
    if step.fo.method == Method.TRANSFER:
        pickup = next(f for f in step.aggregate.fulfillments if f.id == step.fo.feeds_fulfillment_id)
        pickup_lines = {ln.order_line_id: ln for ln in step.aggregate.fulfillment_lines.get(pickup.id, [])}
        for line in step.lines:
            arrived = line.quantity_picked - line.quantity_handed_over
            if arrived:
                step.ledger.receive_transfer(pickup.location_id, pickup_lines[line.order_line_id], arrived)
                line.quantity_handed_over += arrived
        step.say("fulfillment.transfer_received", {"destination": step.aggregate.codes[pickup.location_id]})
    else:
        step.say("fulfillment.delivered")


def hand_over(code: str | None, override_reason: str | None, units: dict[uuid.UUID, int] | None) -> Apply:
    """Release goods to the customer who shows the code (or on a recorded override)."""

    async def apply(step: Step) -> None:
        fo, guard = step.fo, step.settings.guard
        if override_reason is None:
            if guard.is_locked(fo.pickup_locked_until, step.now):
                raise PickupLocked(
                    "too many wrong pickup codes; try again later",
                    locked_until=fo.pickup_locked_until.isoformat() if fo.pickup_locked_until else None,
                )
            if not code_matches(step.settings.secret, fo.id, fo.pickup_code_issue, code):
                failures, locked_until = guard.after_failure(fo.pickup_failed_attempts, step.now)
                fo.pickup_failed_attempts = failures
                fo.pickup_locked_until = locked_until
                step.target = Status(fo.status)
                step.say(
                    "fulfillment.pickup_code_rejected",
                    {"locked_until": locked_until.isoformat() if locked_until else None},
                )
                error = (
                    PickupLocked("too many wrong pickup codes; pickup locked", locked_until=locked_until.isoformat())
                    if locked_until
                    else WrongPickupCode("wrong pickup code", field="code")
                )
                step.commit_before_raise = error
                return
        elif not (step.actor.is_staff or step.actor.is_admin):
            raise InvalidRequest("only staff or an admin may hand over without the code", field="override_reason")

        remaining = {ln.id: ln.quantity_picked - ln.quantity_handed_over for ln in step.lines}
        wanted = remaining if units is None else units
        for line_id, qty in wanted.items():
            if line_id not in remaining:
                raise InvalidRequest(f"not a line of this fulfillment: {line_id}", field="lines")
            if qty < 0 or qty > remaining[line_id]:
                raise InvalidRequest(f"line {line_id}: {qty} requested, {remaining[line_id]} ready", field="lines")
        if not any(wanted.values()):
            raise InvalidRequest("nothing to hand over", field="lines")
        _fulfil_order_lines(step, wanted)
        fo.pickup_failed_attempts = 0
        left = sum(ln.quantity_picked - ln.quantity_handed_over for ln in step.lines)
        data = {
            "handed_over": [
                {"sku": ln.sku, "quantity": wanted.get(ln.id, 0)} for ln in step.lines if wanted.get(ln.id)
            ],
            "override_reason": override_reason,
        }
        if left:
            step.target = Status.READY_FOR_PICKUP
            step.say("fulfillment.partially_picked_up", data)
        else:
            step.say("fulfillment.picked_up", data)

    return apply


def cancel_with(reason: str) -> Apply:
    async def apply(step: Step) -> None:
        if step.fo.method == Method.TRANSFER:
            # Without this transfer the pickup store is short: treat it as a rejection.
            step.target = Status.REJECTED
            await reject_with(reason)(step)
            return
        order_lines = {ln.id: ln for ln in step.aggregate.lines}
        for line in step.lines:
            await step.ledger.release_all(line, reason)
            step.ledger.restock(step.fo.location_id, line, line.quantity_picked - line.quantity_handed_over, reason)
            left = line.quantity - line.quantity_cancelled - line.quantity_handed_over
            line.quantity_cancelled += left
            line.quantity_picked = line.quantity_handed_over
            order_lines[line.order_line_id].quantity_cancelled += left
        for feeder in _transfers_feeding(step):
            await _cancel_fulfillment(step, feeder, reason)
        step.fo.close_reason = reason
        step.say("fulfillment.cancelled", {"reason": reason})

    return apply


async def expire(step: Step) -> None:
    """Uncollected at the deadline: picked goods go back on the shelf, the lines are cancelled."""
    reason = "not collected by the pickup deadline"
    await cancel_with(reason)(step)
    step.drafts.pop()  # the cancellation event; expiry says it in its own words
    step.fo.close_reason = reason
    step.say(
        "fulfillment.expired",
        {"reason": reason, "pickup_deadline": step.fo.pickup_deadline.isoformat() if step.fo.pickup_deadline else None},
    )
