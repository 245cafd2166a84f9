"""FulfillmentOrder: the lines one location must hand over, ship or transfer, and its state machine.

```
pending ─accept→ accepted ─start_picking→ picking ─ready→ ready_for_pickup ─handover→ picked_up
   │                 │                       │  └─pack→ packed ─ship→ shipped ─deliver→ delivered
   └─reject──────────┴───────────────────────┴→ rejected (remaining quantity re-sourced elsewhere)
ready_for_pickup ─expire→ expired (stock restocked)
any state before picked_up/shipped ─cancel→ cancelled
```
"""

from __future__ import annotations

from enum import StrEnum

from orchestrator.platform.errors import IllegalTransition


class Method(StrEnum):
    PICKUP = "pickup"
    CURBSIDE = "curbside"
    SHIP = "ship"
    # Moves stock between stores so a pickup store can hand over lines it did not have.
    TRANSFER = "transfer"

    @property
    def is_pickup(self) -> bool:
        return self in (Method.PICKUP, Method.CURBSIDE)

    @property
    def capability(self) -> str:
        """The location capability this method needs (a transfer source ships to the store)."""
        return "ship" if self is Method.TRANSFER else self.value


class Status(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    PICKING = "picking"
    READY_FOR_PICKUP = "ready_for_pickup"
    PACKED = "packed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    PICKED_UP = "picked_up"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


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
OPEN_STATES = frozenset({S.PENDING, S.ACCEPTED, S.PICKING, S.READY_FOR_PICKUP, S.PACKED})
FULFILLED_STATES = frozenset({S.PICKED_UP, S.SHIPPED, S.DELIVERED})
CLOSED_WITHOUT_FULFILLING = frozenset({S.REJECTED, S.EXPIRED, S.CANCELLED})


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
