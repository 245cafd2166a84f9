"""The states a fulfillment order's record can be in and the methods it can serve by: the
vocabulary the tables, sourcing and the fulfillment state machine share."""

from __future__ import annotations

from enum import StrEnum


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


OPEN_STATES = frozenset({Status.PENDING, Status.ACCEPTED, Status.PICKING, Status.READY_FOR_PICKUP, Status.PACKED})
FULFILLED_STATES = frozenset({Status.PICKED_UP, Status.SHIPPED, Status.DELIVERED})
CLOSED_WITHOUT_FULFILLING = frozenset({Status.REJECTED, Status.EXPIRED, Status.CANCELLED})
