"""Sourcing: which location fulfils which line, and the rule that decided. Pure; no I/O.

Pickup: the chosen store when it can serve everything. Otherwise, per the channel's profile,
``suggest`` the nearest stores that can (the caller answers 409) or ``transfer`` the short
quantities from other stores to the pickup store.
Ship: fewest locations first, then distance to the customer, then capacity headroom; never
split a line into a part worth less than ``min_split_line_value``; skip locations that are
excluded, at capacity, or lack the capability; availability is already net of safety stock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from orchestrator.fulfillment.model import Method
from orchestrator.platform.geo import Coordinates, distance_km


class PickupPolicy(StrEnum):
    SUGGEST = "suggest"
    TRANSFER = "transfer"


class Rule(StrEnum):
    PICKUP_AT_STORE = "pickup_at_store"
    PICKUP_WITH_TRANSFER = "pickup_with_transfer"
    PICKUP_SHORT = "pickup_short_suggest_stores"
    SHIP_SINGLE = "ship_single_location"
    SHIP_SPLIT = "ship_split_fewest_locations"
    NOTHING_TO_SOURCE = "nothing_to_source"


@dataclass(frozen=True, slots=True)
class SourcingProfile:
    version: int = 0
    pickup_policy: PickupPolicy = PickupPolicy.SUGGEST
    min_split_line_value: int = 0
    suggestion_limit: int = 5
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


_Demand = dict[str, int]  # line_key → quantity still to source


class _Scorer:
    """Distances and eligibility for one request, computed once per candidate."""

    def __init__(self, request: SourcingRequest, origin: Coordinates | None) -> None:
        self.request = request
        self.origin = origin
        self.line_sku = {line.line_key: line.sku for line in request.lines}
        self.price = {line.line_key: line.unit_price for line in request.lines}
        self._distance: dict[str, float | None] = {}
        self._preference: dict[str, tuple[float, int, str]] = {}
        self._covered_demand: _Demand | None = None
        self._per_sku: dict[str, int] = {}
        self._coverage: dict[str, int] = {}

    def distance(self, c: Candidate) -> float | None:
        if c.code not in self._distance:
            self._distance[c.code] = (
                distance_km(self.origin, c.coordinates)
                if self.origin is not None and c.coordinates is not None
                else None
            )
        return self._distance[c.code]

    def preference(self, c: Candidate) -> tuple[float, int, str]:
        """Nearer first, then more capacity headroom, then code (a stable tie-break)."""
        key = self._preference.get(c.code)
        if key is None:
            d = self.distance(c)
            headroom = c.headroom
            key = (d if d is not None else float("inf"), -(headroom if headroom is not None else 10**9), c.code)
            self._preference[c.code] = key
        return key

    def ineligible_reason(self, c: Candidate, capability: str) -> str | None:
        if c.code in self.request.excluded:
            return "excluded"
        if capability not in c.capabilities:
            return f"lacks capability {capability}"
        if c.headroom is not None and c.headroom <= 0:
            return "at capacity"
        return None

    def coverage(self, c: Candidate, demand: _Demand) -> int:
        """Units of ``demand`` that ``c`` could serve; lines of one sku share that sku's stock."""
        if demand is self._covered_demand:
            cached = self._coverage.get(c.code)
            if cached is None:
                cached = self._coverage[c.code] = self._count(c, self._per_sku)
            return cached
        return self._count(c, self.per_sku(demand))

    def remember(self, demand: _Demand) -> None:
        """Coverage of this demand is asked for again and again (ranking, scoring): memoise it."""
        self._covered_demand = demand
        self._per_sku = self.per_sku(demand)
        self._coverage = {}

    def per_sku(self, demand: _Demand) -> dict[str, int]:
        per_sku: dict[str, int] = {}
        for k, q in demand.items():
            per_sku[self.line_sku[k]] = per_sku.get(self.line_sku[k], 0) + q
        return per_sku

    @staticmethod
    def _count(c: Candidate, per_sku: dict[str, int]) -> int:
        # Walks the location's stock (the skus asked for, as the database sends it), not the
        # basket: this runs for every candidate, 1,000 of them at a big retailer.
        total = 0
        for sku, have in c.available.items():
            wanted = per_sku.get(sku)
            if wanted and have > 0:
                total += wanted if have >= wanted else have
        return total


def plan_sourcing(request: SourcingRequest, candidates: Iterable[Candidate], profile: SourcingProfile) -> SourcingPlan:
    """Decide where every line comes from, or report what cannot be served and who could."""
    pool = list(candidates)
    demand: _Demand = {}
    for line in request.lines:
        if line.quantity > 0:
            demand[line.line_key] = demand.get(line.line_key, 0) + line.quantity
    if request.method.is_pickup:
        return _plan_pickup(request, pool, profile, demand)
    if request.method is Method.TRANSFER:
        return _plan_transfer(request, pool, profile, demand)
    return _plan_ship(request, pool, profile, demand)


def _plan_pickup(
    request: SourcingRequest, pool: list[Candidate], profile: SourcingProfile, demand: _Demand
) -> SourcingPlan:
    by_code = {c.code: c for c in pool}
    store = by_code.get(request.pickup_location or "")
    origin = store.coordinates if store else request.destination
    scorer = _Scorer(request, origin)
    capability = request.method.capability
    if not demand:
        return SourcingPlan(Rule.NOTHING_TO_SOURCE, (), ())

    # A pickup the customer chose is not refused for capacity: the visit is already planned.
    store_ok = store is not None and scorer.ineligible_reason(store, capability) in (None, "at capacity")
    remaining = dict(demand)
    if store is not None and store_ok:
        local, remaining = _allocate([store], demand, scorer, profile, allow_split=True)
        if not remaining:
            scored = _score(pool, scorer, capability, demand, chosen={store.code})
            return SourcingPlan(Rule.PICKUP_AT_STORE, tuple(local), scored)
        if profile.pickup_policy is PickupPolicy.TRANSFER:
            sources = [c for c in pool if c.code != store.code and scorer.ineligible_reason(c, "ship") is None]
            moved, still_short = _cover(sources, remaining, scorer, profile)
            if not still_short:
                transfers = [
                    Allocation(a.location, a.line_key, a.sku, a.quantity, transfer_to=store.code) for a in moved
                ]
                chosen = {store.code} | {a.location for a in moved}
                scored = _score(pool, scorer, capability, demand, chosen=chosen)
                return SourcingPlan(Rule.PICKUP_WITH_TRANSFER, tuple(local + transfers), scored)

    suggestions = _whole_order_locations(pool, scorer, capability, demand, profile)
    scored = _score(pool, scorer, capability, demand, chosen=set())
    return SourcingPlan(Rule.PICKUP_SHORT, (), scored, unfilled=remaining, suggestions=suggestions)


def _plan_ship(
    request: SourcingRequest, pool: list[Candidate], profile: SourcingProfile, demand: _Demand
) -> SourcingPlan:
    scorer = _Scorer(request, request.destination)
    if not demand:
        return SourcingPlan(Rule.NOTHING_TO_SOURCE, (), ())
    eligible = [c for c in pool if scorer.ineligible_reason(c, "ship") is None]
    allocations, remaining = _cover(eligible, demand, scorer, profile)
    chosen = {a.location for a in allocations}
    scored = _score(pool, scorer, "ship", demand, chosen=chosen)
    if remaining:
        suggestions = _whole_order_locations(pool, scorer, "pickup", demand, profile)
        return SourcingPlan(Rule.SHIP_SPLIT, (), scored, unfilled=remaining, suggestions=suggestions)
    rule = Rule.SHIP_SINGLE if len(chosen) == 1 else Rule.SHIP_SPLIT
    return SourcingPlan(rule, tuple(allocations), scored)


def _plan_transfer(
    request: SourcingRequest, pool: list[Candidate], profile: SourcingProfile, demand: _Demand
) -> SourcingPlan:
    """Units a pickup store still needs (a transfer source failed): other stores ship them there."""
    store = next((c for c in pool if c.code == request.pickup_location), None)
    origin = store.coordinates if store else request.destination
    scorer = _Scorer(request, origin)
    if not demand:
        return SourcingPlan(Rule.NOTHING_TO_SOURCE, (), ())
    sources = [c for c in pool if c.code != request.pickup_location and scorer.ineligible_reason(c, "ship") is None]
    moved, remaining = _cover(sources, demand, scorer, profile)
    scored = _score(pool, scorer, "ship", demand, chosen={a.location for a in moved})
    if remaining:
        return SourcingPlan(Rule.PICKUP_WITH_TRANSFER, (), scored, unfilled=remaining)
    transfers = tuple(
        Allocation(a.location, a.line_key, a.sku, a.quantity, transfer_to=request.pickup_location) for a in moved
    )
    return SourcingPlan(Rule.PICKUP_WITH_TRANSFER, transfers, scored)


def _cover(
    eligible: Sequence[Candidate], demand: _Demand, scorer: _Scorer, profile: SourcingProfile
) -> tuple[list[Allocation], _Demand]:
    """Fewest locations first: one location, else the best pair, else a greedy cover."""
    scorer.remember(demand)
    need = scorer.per_sku(demand)
    total = sum(need.values())
    useful = [c for c in eligible if scorer.coverage(c, demand) > 0]
    useful.sort(key=scorer.preference)
    for c in useful:
        if scorer.coverage(c, demand) == total:
            allocations, remaining = _allocate([c], demand, scorer, profile, allow_split=False)
            if not remaining:
                return allocations, remaining

    widest = sorted(useful, key=lambda c: (-scorer.coverage(c, demand), scorer.preference(c)))
    pairs = widest[: profile.pair_search_width]
    skus = list(need)
    needs = [need[sku] for sku in skus]
    stock = [[max(0, c.available.get(sku, 0)) for sku in skus] for c in pairs]
    covers = [scorer.coverage(c, demand) for c in pairs]
    feasible: list[tuple[tuple[int, float, int], Candidate, Candidate]] = []
    for i, a in enumerate(pairs):
        for j in range(i + 1, len(pairs)):
            if covers[i] + covers[j] < total:
                break  # sorted by coverage: no later partner can make up the difference
            if all(x + y >= q for x, y, q in zip(stock[i], stock[j], needs, strict=True)):
                b = pairs[j]
                first, second = (a, b) if scorer.preference(a) <= scorer.preference(b) else (b, a)
                feasible.append((_pair_key(scorer, first, second), first, second))
    # Nearest pair first; the minimum split value can still rule a pair out.
    for _, first, second in sorted(feasible, key=lambda f: f[0]):
        allocations, remaining = _allocate([first, second], demand, scorer, profile, allow_split=True)
        if not remaining:
            return allocations, remaining
    return _greedy(widest[: profile.greedy_width], demand, scorer, profile)


def _pair_key(scorer: _Scorer, first: Candidate, second: Candidate) -> tuple[int, float, int]:
    """As in preference(): an unknown distance ranks last, no capacity limit is most headroom."""
    distances = [d for d in (scorer.distance(first), scorer.distance(second)) if d is not None]
    headroom = sum(10**9 if h is None else h for h in (first.headroom, second.headroom))
    return (2 - len(distances), sum(distances), -headroom)


def _greedy(
    ranked: Sequence[Candidate], demand: _Demand, scorer: _Scorer, profile: SourcingProfile
) -> tuple[list[Allocation], _Demand]:
    """Repeatedly take the location serving the most remaining units (ties: preference).
    The widest ``greedy_width`` locations are tried first; the rest only if units remain, so a
    long tail of small stores is never ignored when it is needed."""
    remaining = dict(demand)
    allocations: list[Allocation] = []
    width = profile.greedy_width
    for left in (list(ranked[:width]), list(ranked[width:])):
        while remaining and left:
            pick = min(left, key=lambda c: (-scorer.coverage(c, remaining), scorer.preference(c)))
            if scorer.coverage(pick, remaining) == 0:
                break
            left.remove(pick)
            placed, remaining = _allocate([pick], remaining, scorer, profile, allow_split=True)
            allocations.extend(placed)
    return allocations, remaining


def _allocate(
    ordered: Sequence[Candidate],
    demand: _Demand,
    scorer: _Scorer,
    profile: SourcingProfile,
    *,
    allow_split: bool,
) -> tuple[list[Allocation], _Demand]:
    """Serve ``demand`` from ``ordered`` locations. Whole lines first, each from the first
    location (in order) that holds all of it; with ``allow_split`` what is left may then be
    shared between locations, no part worth less than the profile's minimum."""
    remaining = dict(demand)
    allocations: list[Allocation] = []
    used: dict[tuple[str, str], int] = {}  # (location, sku): lines of one sku share its stock

    def left_at(c: Candidate, sku: str) -> int:
        return max(0, c.available.get(sku, 0)) - used.get((c.code, sku), 0)

    def place(c: Candidate, key: str, sku: str, take: int) -> None:
        allocations.append(Allocation(c.code, key, sku, take))
        used[(c.code, sku)] = used.get((c.code, sku), 0) + take
        if take == remaining[key]:
            del remaining[key]
        else:
            remaining[key] -= take

    for key, wanted in list(remaining.items()):
        sku = scorer.line_sku[key]
        whole = next((c for c in ordered if left_at(c, sku) >= wanted), None)
        if whole is not None:
            place(whole, key, sku, wanted)
    if not allow_split:
        return allocations, remaining
    floor = profile.min_split_line_value
    for c in ordered:
        for key, wanted in list(remaining.items()):
            sku = scorer.line_sku[key]
            take = min(left_at(c, sku), wanted)
            if take <= 0:
                continue
            if take < wanted and floor:
                price = scorer.price[key]
                # Leave a remainder worth the minimum too, taking fewer units if need be.
                keep = -(-floor // price) if price else 0
                take = min(take, wanted - keep)
                if take <= 0 or take * price < floor:
                    continue
            place(c, key, sku, take)
    return allocations, remaining


def _whole_order_locations(
    pool: Sequence[Candidate],
    scorer: _Scorer,
    capability: str,
    demand: _Demand,
    profile: SourcingProfile,
) -> tuple[str, ...]:
    total = sum(demand.values())
    serving = [
        c
        for c in pool
        if c.code not in scorer.request.excluded
        and capability in c.capabilities
        and scorer.coverage(c, demand) == total
    ]
    serving.sort(key=scorer.preference)
    return tuple(c.code for c in serving[: profile.suggestion_limit])


def _score(
    pool: Sequence[Candidate],
    scorer: _Scorer,
    capability: str,
    demand: _Demand,
    *,
    chosen: set[str],
) -> tuple[ScoredCandidate, ...]:
    total = sum(demand.values())
    scored = []
    for c in sorted(pool, key=scorer.preference):
        covers = scorer.coverage(c, demand)
        reason = scorer.ineligible_reason(c, capability)
        if reason is None and covers == 0:
            reason = "no stock"
        d = scorer.distance(c)
        scored.append(
            ScoredCandidate(
                location=c.code,
                distance_km=round(d, 3) if d is not None else None,
                headroom=c.headroom,
                covers_units=covers,
                covers_all=covers == total,
                eligible=reason is None,
                reason=reason,
                chosen=c.code in chosen,
            )
        )
    return tuple(scored)
