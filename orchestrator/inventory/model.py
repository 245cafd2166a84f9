"""Stock at one location: what is on the shelf, what is promised, what is kept back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from orchestrator.platform.errors import InvalidRequest, Shortfall, StockWouldGoNegative


class MovementKind(StrEnum):
    """Every change to a StockLevel is one ledger row of one of these kinds."""

    RECEIPT = "receipt"
    ADJUSTMENT = "adjustment"
    COUNT = "count"
    IMPORT = "import"
    RESERVATION = "reservation"
    RELEASE = "release"
    PICK = "pick"
    SALE = "sale"
    TRANSFER_OUT = "transfer_out"
    TRANSFER_IN = "transfer_in"
    RESTOCK = "restock"


@dataclass(frozen=True, slots=True)
class StockPosition:
    on_hand: int
    reserved: int
    safety_stock: int = 0

    @property
    def available(self) -> int:
        """What a new order may reserve: never below zero."""
        return max(0, self.on_hand - self.reserved - self.safety_stock)

    def can_reserve(self, quantity: int) -> bool:
        return quantity <= self.available


StockKey = tuple[int, int]  # (location_id, product_id): also the canonical lock order


def find_shortfalls(
    positions: Mapping[StockKey, StockPosition],
    wanted: Mapping[StockKey, int],
    sku_of: Mapping[int, str],
) -> list[Shortfall]:
    """Every (location, sku) the plan wants more of than is available, collected in one pass."""
    short = []
    for key in sorted(wanted):
        position = positions.get(key, StockPosition(0, 0))
        if not position.can_reserve(wanted[key]):
            short.append(Shortfall(sku_of[key[1]], wanted[key], position.available))
    return short


# The most a count may set (the API's bound); also keeps adjustments inside the 32-bit columns.
MAX_ON_HAND = 10**9


def check_new_on_hand(on_hand: int, reserved: int) -> None:
    """A count or adjustment may not leave fewer units than are already promised to orders."""
    if on_hand > MAX_ON_HAND:
        raise InvalidRequest(f"on_hand {on_hand} would exceed the maximum of {MAX_ON_HAND}", field="delta")
    if on_hand < 0:
        raise StockWouldGoNegative("on_hand cannot go below zero", on_hand=on_hand)
    if on_hand < reserved:
        raise StockWouldGoNegative(
            f"on_hand {on_hand} would be below the {reserved} units reserved for orders",
            on_hand=on_hand,
            reserved=reserved,
        )


def check_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise InvalidRequest("a stock change needs a reason", field="reason")
    return reason
