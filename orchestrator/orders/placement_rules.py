"""Where a change sends units: moving a pickup to another store, switching between pickup and
shipping, and placing units a change adds. Pure, on the snapshot and on the effects the
take-aways already collected (``change_rules``); returns what each open fulfillment gives back
and the units to source (``SourcingAsk``), which the use case places after the give-backs are
written (so stock a moved pickup lets go of can travel to its new store).

Rules chosen where the issue is silent:
- A pickup that moves keeps its row, its lines and its pickup code: at the new store it waits
  to be accepted again (``pending``); what the old store reserved is released there and what it
  had picked goes back on its shelf; transfers still on their way to it are cancelled and its
  units sourced for the new store. Nothing of it may be handed over yet, and no transfer to it may
  be on the road (``in_transfer``): stock in transit goes where it was sent.
- Moving a pickup to the store it is at re-sources the units it waits for (after a rejection or
  a short pick), by transfer when the store lacks them.
- Switching between pickup and shipping cancels the open fulfillments of the old kind (only
  before picking started) and sources their units, and any unsourced ones, the new way.
- Units a change adds (``add_line``, a higher ``set_quantity``) join the open pickup while it is
  not being picked, else a new pickup at the order's store; a shipment gets new parcels.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping

from orchestrator.fulfillment.effects import Effects
from orchestrator.fulfillment.model import Fulfillment, MoveKind, Order
from orchestrator.fulfillment.transitions import cancel_feeders
from orchestrator.order_record.states import OPEN_STATES, Method, Status
from orchestrator.orders.change_actions import (
    MovePickup,
    OrderFields,
    OrderState,
    Placement,
    SourcingAsk,
    SwitchToPickup,
    SwitchToShip,
)
from orchestrator.platform.events import EventType

CHANGEABLE = frozenset({Status.PENDING, Status.ACCEPTED})
MOVABLE = frozenset({Status.PENDING, Status.ACCEPTED, Status.PICKING, Status.READY_FOR_PICKUP})
SWITCHED_TO_SHIP = "switched to shipping"
SWITCHED_TO_PICKUP = "switched to pickup"


def open_pickups(order: Order) -> list[Fulfillment]:
    return [f for f in order.fulfillments if f.method.is_pickup and f.status in OPEN_STATES]


def placement_refusal(state: OrderState, action: Placement, unsourced: int, adds: bool) -> str | None:
    """Why the placement cannot be made on this order (None: it can), before any stock is asked."""
    order = state.order
    match action:
        case MovePickup(location=code):
            if not state.method.is_pickup:
                return "not_a_pickup"
            if state.method.value not in state.sites[code].capabilities:
                return "location_does_not_offer_pickup"
            moving = [f for f in open_pickups(order) if f.location != code]
            if not moving and not unsourced and not adds:
                return "already_at_location"
            return _stuck(order, moving, MOVABLE)
        case SwitchToShip():
            if not state.method.is_pickup:
                return "not_a_pickup"
            if state.pays_at_counter:
                return "paid_in_store"
            return _stuck(order, open_pickups(order), CHANGEABLE)
        case SwitchToPickup(location=code):
            if state.method is not Method.SHIP:
                return "not_a_shipment"
            if "pickup" not in state.sites[code].capabilities:
                return "location_does_not_offer_pickup"
            parcels = [f for f in order.fulfillments if f.method is Method.SHIP and f.status in OPEN_STATES]
            return _stuck(order, parcels, CHANGEABLE)
    return None  # pragma: no cover - every placement is matched above


def _stuck(order: Order, fulfillments: list[Fulfillment], allowed: frozenset[Status]) -> str | None:
    for fo in fulfillments:
        if any(ln.handed_over for ln in fo.lines):
            return "already_handed_over"
        if fo.status not in allowed:
            return "already_picked" if any(ln.picked for ln in fo.lines) else "picking_started"
        if any(t.status is Status.SHIPPED for t in order.transfers_feeding(fo)):
            return "in_transfer"
    return None


def place(
    state: OrderState,
    effects: dict[uuid.UUID, Effects],
    states: dict[uuid.UUID, Status],
    placement: tuple[int, Placement] | None,
    unsourced: Mapping[uuid.UUID, int],
    adding: Mapping[uuid.UUID, int],
    adding_index: int,
) -> tuple[OrderFields, tuple[SourcingAsk, ...], dict[uuid.UUID, int]]:
    """The give-backs (into ``effects``, the new states into ``states``), the order's new fields,
    the asks, and the unsourced units each order line gives to an ask (its ``unsourced`` goes
    down by them)."""
    sourced: dict[uuid.UUID, int] = {k: v for k, v in unsourced.items() if v}
    if placement is None:
        return OrderFields(), _additions(state, effects, adding, adding_index), {}
    index, action = placement
    joining = _sum(sourced, adding)
    match action:
        case MovePickup(location=code):
            return OrderFields(pickup_location=code), _move(state, effects, states, index, code, joining), sourced
        case SwitchToShip(address=address):
            units = _give_up(state, effects, states, open_pickups(state.order), SWITCHED_TO_SHIP)
            ask = SourcingAsk(index, Method.SHIP, _sum(units, joining), address=address)
            return OrderFields(method=Method.SHIP, address=address), (ask,), sourced
        case SwitchToPickup(location=code):
            parcels = [f for f in state.order.fulfillments if f.method is Method.SHIP and f.status in OPEN_STATES]
            units = _give_up(state, effects, states, parcels, SWITCHED_TO_PICKUP)
            ask = SourcingAsk(index, Method.PICKUP, _sum(units, joining), location=code)
            return OrderFields(method=Method.PICKUP, pickup_location=code), (ask,), sourced
    raise AssertionError(action)  # pragma: no cover


def _additions(
    state: OrderState, effects: dict[uuid.UUID, Effects], adding: Mapping[uuid.UUID, int], index: int
) -> tuple[SourcingAsk, ...]:
    if not adding:
        return ()
    if state.method is Method.SHIP:
        return (SourcingAsk(index, Method.SHIP, dict(adding), address=state.address),)
    joinable = [
        f
        for f in open_pickups(state.order)
        if f.status in CHANGEABLE and _left(effects, f) and f.location == state.pickup_location
    ]
    if joinable:
        fo = joinable[0]
        return (
            SourcingAsk(index, state.method, dict(adding), location=fo.location, pickup=fo.id, joining=dict(adding)),
        )
    return (SourcingAsk(index, state.method, dict(adding), location=state.pickup_location),)


def _move(
    state: OrderState,
    effects: dict[uuid.UUID, Effects],
    states: dict[uuid.UUID, Status],
    index: int,
    code: str,
    joining: Mapping[uuid.UUID, int],
) -> tuple[SourcingAsk, ...]:
    site = state.sites[code]
    asks = []
    pickups = [f for f in open_pickups(state.order) if _left(effects, f)]
    for fo in pickups:
        units: dict[uuid.UUID, int] = defaultdict(int)
        restocked = 0
        if fo.location != code:
            fx = _effects(effects, fo)
            for line in fx.lines:
                released = sum(m.quantity for m in fx.moves if m.kind is MoveKind.RELEASE and m.line_id == line.id)
                fx.move(MoveKind.RELEASE, line, line.reserved - released, f"pickup moved to {code}")
                fx.move(MoveKind.RESTOCK, line, line.waiting, f"pickup moved to {code}")
                restocked += line.waiting
                fx.change(line, picked=-line.waiting)
            cancel_feeders(fx, state.order, f"pickup moved to {code}")
            fx.fields.update(
                location_id=site.id,
                ready_at=None,
                pickup_deadline=None,
                reminder_sent_at=None,
                pickup_failed_attempts=0,
                pickup_locked_until=None,
                arrived_at=None,
                arrival=None,
            )
            states[fo.id] = Status.PENDING
            fx.event(
                EventType.FULFILLMENT_MOVED,
                {
                    "from_location": fo.location,
                    "to_location": code,
                    "reason": "moved by a change",
                    "units_restocked": restocked,
                },
            )
            for line in fx.lines:
                left = line.quantity - line.cancelled - line.handed_over
                if left:
                    units[line.order_line_id] += left
        first = not asks
        extra = dict(joining) if first else {}
        asks.append(SourcingAsk(index, state.method, _sum(units, extra), location=code, pickup=fo.id, joining=extra))
    if not asks and joining:
        asks.append(SourcingAsk(index, state.method, dict(joining), location=code))
    return tuple(a for a in asks if a.units)


def _give_up(
    state: OrderState,
    effects: dict[uuid.UUID, Effects],
    states: dict[uuid.UUID, Status],
    fulfillments: list[Fulfillment],
    reason: str,
) -> dict[uuid.UUID, int]:
    """Cancel ``fulfillments`` (and what feeds them) without cancelling the order's lines: their
    units are sourced again the new way. Returns those units per order line."""
    units: dict[uuid.UUID, int] = defaultdict(int)
    for fo in fulfillments:
        fx = _effects(effects, fo)
        for line in fx.lines:
            released = sum(m.quantity for m in fx.moves if m.kind is MoveKind.RELEASE and m.line_id == line.id)
            fx.move(MoveKind.RELEASE, line, line.reserved - released, reason)
            left = line.quantity - line.cancelled - line.handed_over
            fx.change(line, cancelled=left)
            units[line.order_line_id] += left
        cancel_feeders(fx, state.order, reason)
        fx.fields["close_reason"] = reason
        states[fo.id] = Status.CANCELLED
        fx.event(EventType.FULFILLMENT_CANCELLED, {"reason": reason})
    return {k: v for k, v in units.items() if v}


def _effects(effects: dict[uuid.UUID, Effects], fo: Fulfillment) -> Effects:
    if fo.id not in effects:
        effects[fo.id] = Effects(fo)
    return effects[fo.id]


def _left(effects: Mapping[uuid.UUID, Effects], fo: Fulfillment) -> bool:
    """Whether the pickup still holds units after the take-aways."""
    lines = effects[fo.id].lines if fo.id in effects else list(fo.lines)
    return any(ln.quantity - ln.cancelled - ln.handed_over > 0 for ln in lines)


def _sum(a: Mapping[uuid.UUID, int], b: Mapping[uuid.UUID, int]) -> dict[uuid.UUID, int]:
    out: dict[uuid.UUID, int] = defaultdict(int)
    for part in (a, b):
        for k, v in part.items():
            out[k] += v
    return {k: v for k, v in out.items() if v}
