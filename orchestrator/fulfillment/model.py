"""FulfillmentOrder: the lines one location must hand over, ship or transfer, and its state machine.

```
pending ─accept→ accepted ─start_picking→ picking ─ready→ ready_for_pickup ─handover→ picked_up
   │                 │                       │  └─pack→ packed ─ship→ shipped ─deliver→ delivered
   └─reject──────────┴───────────────────────┴→ rejected (remaining quantity re-sourced elsewhere)
ready_for_pickup ─expire→ expired (stock restocked)
any state before picked_up/shipped ─cancel→ cancelled
```

The table says which action is legal where; ``transitions.py`` decides what an action does. Both
work on the plain snapshots below and answer with an ``Outcome``: the new state and its effects
(line quantities, stock moves, shortages to re-source, field changes, events), which the service
persists as they are.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from orchestrator.order_record.states import Method, Status
from orchestrator.platform.errors import IllegalTransition
from orchestrator.platform.events import OrderEventDraft


class Action(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"
    START_PICKING = "start_picking"
    PICK = "pick"
    READY = "ready"
    PACK = "pack"
    SHIP = "ship"
    DELIVER = "deliver"
    HANDOVER = "handover"
    EXPIRE = "expire"
    REMIND = "remind"
    CANCEL = "cancel"


S, A = Status, Action
_PICKUP = frozenset({Method.PICKUP, Method.CURBSIDE})
_SHIPPED = frozenset({Method.SHIP, Method.TRANSFER})
_ALL = _PICKUP | _SHIPPED

# (state, action) → (next state, methods that may take it). PICK and HANDOVER may stay in place:
# a pick records quantities while picking; a partial handover leaves the rest ready. EXPIRE and
# REMIND are the clock's, not anybody's to choose.
TRANSITIONS: dict[tuple[Status, Action], tuple[Status, frozenset[Method]]] = {
    (S.PENDING, A.ACCEPT): (S.ACCEPTED, _ALL),
    (S.PENDING, A.REJECT): (S.REJECTED, _ALL),
    (S.PENDING, A.CANCEL): (S.CANCELLED, _ALL),
    (S.ACCEPTED, A.START_PICKING): (S.PICKING, _ALL),
    (S.ACCEPTED, A.REJECT): (S.REJECTED, _ALL),
    (S.ACCEPTED, A.CANCEL): (S.CANCELLED, _ALL),
    (S.PICKING, A.PICK): (S.PICKING, _ALL),
    (S.PICKING, A.READY): (S.READY_FOR_PICKUP, _PICKUP),
    (S.PICKING, A.PACK): (S.PACKED, _SHIPPED),
    (S.PICKING, A.REJECT): (S.REJECTED, _ALL),
    (S.PICKING, A.CANCEL): (S.CANCELLED, _ALL),
    (S.READY_FOR_PICKUP, A.HANDOVER): (S.PICKED_UP, _PICKUP),
    (S.READY_FOR_PICKUP, A.EXPIRE): (S.EXPIRED, _PICKUP),
    (S.READY_FOR_PICKUP, A.REMIND): (S.READY_FOR_PICKUP, _PICKUP),
    (S.READY_FOR_PICKUP, A.CANCEL): (S.CANCELLED, _PICKUP),
    (S.PACKED, A.SHIP): (S.SHIPPED, _SHIPPED),
    (S.PACKED, A.CANCEL): (S.CANCELLED, _SHIPPED),
    (S.SHIPPED, A.DELIVER): (S.DELIVERED, _SHIPPED),
}

SYSTEM_ACTIONS = frozenset({A.EXPIRE, A.REMIND})


def allowed_actions(state: Status, method: Method) -> list[str]:
    return [
        action.value
        for (from_state, action), (_, methods) in TRANSITIONS.items()
        if from_state is state and method in methods and action not in SYSTEM_ACTIONS
    ]


def next_state(state: Status, method: Method, action: Action) -> Status:
    """The state ``action`` leads to, or IllegalTransition naming what is allowed instead."""
    entry = TRANSITIONS.get((state, action))
    if entry is None or method not in entry[1]:
        raise IllegalTransition(action.value, state.value, allowed_actions(state, method))
    return entry[0]


# --- What a transition sees -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Line:
    """A fulfillment line's quantities, and the units reserved for it (loaded by the service)."""

    id: uuid.UUID
    order_line_id: uuid.UUID
    sku: str
    quantity: int
    picked: int = 0
    cancelled: int = 0
    handed_over: int = 0
    reserved: int = 0  # active reservations, wherever they are
    reserved_here: int = 0  # of those, at the fulfillment's location: only these can be picked

    @property
    def open(self) -> int:
        """Units neither picked nor cancelled."""
        return self.quantity - self.cancelled - self.picked

    @property
    def waiting(self) -> int:
        """Picked units not yet with the customer (or, for a transfer, not yet arrived)."""
        return self.picked - self.handed_over


@dataclass(frozen=True, slots=True)
class Fulfillment:
    id: uuid.UUID
    status: Status
    method: Method
    location_id: int
    location: str  # the location's code, as events name it
    lines: tuple[Line, ...] = ()
    feeds: uuid.UUID | None = None  # a transfer: the pickup it carries stock to
    ready_at: datetime | None = None
    pickup_deadline: datetime | None = None
    reminder_sent_at: datetime | None = None
    pickup_code_issue: int = 0
    pickup_failed_attempts: int = 0
    pickup_locked_until: datetime | None = None
    pickup_hold_days: int | None = None  # the location's, loaded only to mark a pickup ready

    def line(self, line_id: uuid.UUID) -> Line:
        return next(ln for ln in self.lines if ln.id == line_id)


@dataclass(frozen=True, slots=True)
class OrderLine:
    id: uuid.UUID
    sku: str
    quantity: int
    cancelled: int = 0
    fulfilled: int = 0
    unsourced: int = 0


@dataclass(frozen=True, slots=True)
class Order:
    """What a transition needs of the order: its other fulfillments (transfers feeding a pickup,
    the pickup a transfer feeds) and its lines."""

    status: str
    fulfillments: tuple[Fulfillment, ...]
    lines: tuple[OrderLine, ...] = ()

    def fulfillment(self, fulfillment_id: uuid.UUID) -> Fulfillment:
        return next(f for f in self.fulfillments if f.id == fulfillment_id)

    def transfers_feeding(self, pickup: Fulfillment) -> list[Fulfillment]:
        return [f for f in self.fulfillments if f.feeds == pickup.id]


# --- What a transition does -------------------------------------------------------------------


class MoveKind(StrEnum):
    PICK = "pick"  # consume the reservation: the units leave the shelf with the order
    TRANSFER_OUT = "transfer_out"  # the same, onto a transfer to the pickup store
    RELEASE = "release"  # reserved units become available again where they are
    RESTOCK = "restock"  # picked units go back on the shelf
    WRITE_OFF = "write_off"  # units the shelf count promised but that are not there
    RECEIVE_TRANSFER = "receive_transfer"  # arrived at the pickup store, shelved and reserved


@dataclass(frozen=True, slots=True)
class StockMove:
    kind: MoveKind
    line_id: uuid.UUID  # the fulfillment line whose product (and reservations) move
    location_id: int
    quantity: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class LineChange:
    """Quantities added to (negative: taken from) a fulfillment line."""

    line_id: uuid.UUID
    picked: int = 0
    cancelled: int = 0
    handed_over: int = 0


@dataclass(frozen=True, slots=True)
class OrderLineChange:
    """Quantities added to (negative: taken from) an order line."""

    order_line_id: uuid.UUID
    fulfilled: int = 0
    cancelled: int = 0
    unsourced: int = 0


class ShortageTrigger(StrEnum):
    REJECTION = "rejection"
    SHORT_PICK = "short_pick"


@dataclass(frozen=True, slots=True)
class Shortage:
    line_id: uuid.UUID  # the fulfillment line that gave the units up
    quantity: int


@dataclass(frozen=True)
class Outcome:
    """What one transition did to one fulfillment. ``closed`` holds the fulfillments closed
    with it (transfers feeding a pickup that closes); ``events`` are in timeline order and
    include theirs. ``error_after_commit`` is raised once the outcome is committed: a wrong
    pickup code is counted, then refused."""

    fulfillment_id: uuid.UUID
    state: Status
    fields: Mapping[str, object] = field(default_factory=dict)
    lines: tuple[LineChange, ...] = ()
    order_lines: tuple[OrderLineChange, ...] = ()
    moves: tuple[StockMove, ...] = ()
    shortages: tuple[Shortage, ...] = ()
    events: tuple[OrderEventDraft, ...] = ()
    closed: tuple[Outcome, ...] = ()
    error_after_commit: Exception | None = None

    @property
    def trigger(self) -> ShortageTrigger:
        """Why the shortages are sourced again: a location out of the order, or a short pick."""
        return ShortageTrigger.REJECTION if self.state is Status.REJECTED else ShortageTrigger.SHORT_PICK


@dataclass(frozen=True)
class OrderOutcome:
    """A change to a whole order: its fulfillments' outcomes, then what it does to the order."""

    fulfillments: tuple[Outcome, ...]
    order_lines: tuple[OrderLineChange, ...] = ()
    events: tuple[OrderEventDraft, ...] = ()
