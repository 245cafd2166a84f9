"""What sourcing reasons about: the request, the candidate locations, the channel's profile, and
the plan it comes back with. Pure types; the engine (``engine.py``) decides, the rest stores."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from orchestrator.order_record.states import Method
from orchestrator.platform.geo import Coordinates

# What a location and a profile start with: a location's preparation time (minutes) and the time
# units take to travel to a pickup store (hours).
DEFAULT_PREP_MINUTES = 120
DEFAULT_TRANSFER_HOURS = 24


class PickupShortfall(StrEnum):
    """What happens when the pickup store cannot serve it all (``engine.py`` says when)."""

    TRANSFER = "transfer"  # the short units travel to the pickup store from other stores
    MOVE = "move"  # the pickup goes to the nearest store that can serve it all
    ASK_CUSTOMER = "ask_customer"  # the customer chooses among ready-made changes


class ShortfallFallback(StrEnum):
    """What an order waiting for the customer gets when nobody chose by its deadline."""

    TRANSFER = "transfer"
    CANCEL = "cancel"


class Rule(StrEnum):
    PICKUP_AT_STORE = "pickup_at_store"
    PICKUP_WITH_TRANSFER = "pickup_with_transfer"
    PICKUP_MOVED = "pickup_moved_to_nearest_store"
    PICKUP_SHORT = "pickup_short_suggest_stores"
    SHIP_SINGLE = "ship_single_location"
    SHIP_SPLIT = "ship_split_fewest_locations"
    NOTHING_TO_SOURCE = "nothing_to_source"


@dataclass(frozen=True, slots=True)
class SourcingProfile:
    version: int = 0
    on_pickup_shortfall: PickupShortfall = PickupShortfall.ASK_CUSTOMER
    ask_customer_fallback: ShortfallFallback = ShortfallFallback.TRANSFER
    ask_customer_timeout_hours: int = 24
    min_split_line_value: int = 0
    suggestion_limit: int = 5
    # How long units take to travel to a pickup store (expected ready times, ``ready_time.py``).
    transfer_hours: int = DEFAULT_TRANSFER_HOURS
    # Pairs are searched exhaustively among this many best-covering candidates, and the greedy
    # cover looks at this many: bounds the work at 1,000 stores.
    pair_search_width: int = 40
    greedy_width: int = 150


@dataclass(frozen=True, slots=True)
class LineDemand:
    line_key: str
    sku: str
    quantity: int
    unit_price: int = 0


@dataclass(frozen=True, slots=True)
class Candidate:
    code: str
    coordinates: Coordinates | None
    capabilities: frozenset[str]
    available: Mapping[str, int]
    daily_capacity: int | None = None
    open_fulfillments: int = 0
    # How long the location takes to have an order ready (expected ready times).
    prep_minutes: int = DEFAULT_PREP_MINUTES

    @property
    def headroom(self) -> int | None:
        if self.daily_capacity is None:
            return None
        return self.daily_capacity - self.open_fulfillments


@dataclass(frozen=True, slots=True)
class SourcingRequest:
    lines: tuple[LineDemand, ...]
    method: Method
    pickup_location: str | None = None
    destination: Coordinates | None = None
    excluded: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Allocation:
    location: str
    line_key: str
    sku: str
    quantity: int
    transfer_to: str | None = None


@dataclass(frozen=True, slots=True)
class ScoredCandidate:
    location: str
    distance_km: float | None
    headroom: int | None
    covers_units: int
    covers_all: bool
    eligible: bool
    reason: str | None = None
    chosen: bool = False


@dataclass(frozen=True)
class SourcingPlan:
    rule: Rule
    allocations: tuple[Allocation, ...]
    candidates: tuple[ScoredCandidate, ...]
    unfilled: Mapping[str, int] = field(default_factory=dict)
    suggestions: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.unfilled

    @property
    def locations(self) -> list[str]:
        return list(dict.fromkeys(a.location for a in self.allocations))


def profile_from_row(row: Mapping[str, Any] | None) -> SourcingProfile:
    """A stored profile version (its columns by name); no row means the defaults, version 0."""
    if row is None:
        return SourcingProfile()
    return SourcingProfile(
        version=row["version"],
        on_pickup_shortfall=PickupShortfall(row["on_pickup_shortfall"]),
        # A row read by an older query (or stored before the fallback existed) takes the defaults.
        ask_customer_fallback=ShortfallFallback(row.get("ask_customer_fallback", ShortfallFallback.TRANSFER)),
        ask_customer_timeout_hours=row.get("ask_customer_timeout_hours", 24),
        min_split_line_value=row["min_split_line_value"],
        suggestion_limit=row["suggestion_limit"],
        # A row stored before profiles carried a transfer time takes the default.
        transfer_hours=row.get("transfer_hours", DEFAULT_TRANSFER_HOURS),
    )
