"""Sourcing: which location fulfils which line, and the rule that decided. Pure; no I/O.

Pickup: the chosen store when it can serve everything. Otherwise the channel profile's
``on_pickup_shortfall`` decides:
- ``transfer``: the short quantities travel from other stores to the pickup store;
- ``move``: the pickup goes to the nearest store that can serve all of it (``PICKUP_MOVED``);
- ``ask_customer``: nothing is placed; the plan suggests the nearest stores that can serve it all.
  At checkout the customer is present, so intake answers 409 with the suggestions and the channel
  asks them there: no order waits. Only an order already placed (a rejection or short pick later)
  waits in ``action_required`` with ready-made changes (``sourcing/shortfall_options.py``).
A policy that cannot act (no store holds it all, no transfer covers it) ends as ``PICKUP_SHORT``.
Ship: fewest locations first, then distance to the customer, then capacity headroom; never
split a line into a part worth less than ``min_split_line_value``; skip locations that are
excluded, at capacity, or lack the capability; availability is already net of safety stock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from orchestrator.order_record.states import Method
from orchestrator.sourcing.model import (
    Allocation,
    Candidate,
    PickupShortfall,
    Rule,
    ScoredCandidate,
    SourcingPlan,
    SourcingProfile,
    SourcingRequest,
)
from orchestrator.sourcing.scoring import Demand, Scorer


def plan_sourcing(request: SourcingRequest, candidates: Iterable[Candidate], profile: SourcingProfile) -> SourcingPlan:
    """Decide where every line comes from, or report what cannot be served and who could."""
    pool = list(candidates)
    demand: Demand = {}
    for line in request.lines:
        if line.quantity > 0:
            demand[line.line_key] = demand.get(line.line_key, 0) + line.quantity
    if request.method.is_pickup:
        return _plan_pickup(request, pool, profile, demand)
    if request.method is Method.TRANSFER:
        return _plan_transfer(request, pool, profile, demand)
    return _plan_ship(request, pool, profile, demand)


def _plan_pickup(
    request: SourcingRequest, pool: list[Candidate], profile: SourcingProfile, demand: Demand
) -> SourcingPlan:
    by_code = {c.code: c for c in pool}
    store = by_code.get(request.pickup_location or "")
    origin = store.coordinates if store else request.destination
    scorer = Scorer(request, origin)
    capability = request.method.capability
    if not demand:
        return SourcingPlan(Rule.NOTHING_TO_SOURCE, (), ())

    # A pickup the customer chose is not refused for capacity: the visit is already planned.
    store_ok = store is not None and scorer.ineligible_reason(store, capability) in (None, "at capacity")
    remaining = dict(demand)
    if store is not None and store_ok:
        local, remaining = _allocate_splitting_lines([store], demand, scorer, profile)
        if not remaining:
            scored = _score(pool, scorer, capability, demand, chosen={store.code})
            return SourcingPlan(Rule.PICKUP_AT_STORE, tuple(local), scored)
        if profile.on_pickup_shortfall is PickupShortfall.TRANSFER:
            sources = [c for c in pool if c.code != store.code and scorer.ineligible_reason(c, "ship") is None]
            moved, still_short = _cover(sources, remaining, scorer, profile)
            if not still_short:
                transfers = [
                    Allocation(a.location, a.line_key, a.sku, a.quantity, transfer_to=store.code) for a in moved
                ]
                chosen = {store.code} | {a.location for a in moved}
                scored = _score(pool, scorer, capability, demand, chosen=chosen)
                return SourcingPlan(Rule.PICKUP_WITH_TRANSFER, tuple(local + transfers), scored)

    serving = _serving_all(pool, scorer, capability, demand)
    suggestions = tuple(c.code for c in serving[: profile.suggestion_limit])
    if profile.on_pickup_shortfall is PickupShortfall.MOVE and serving:
        # The nearest store holding all of it takes the whole pickup, nothing from the chosen one.
        nearest = serving[0]
        moved, rest = _allocate_splitting_lines([nearest], demand, scorer, profile)
        if not rest:
            scored = _score(pool, scorer, capability, demand, chosen={nearest.code})
            return SourcingPlan(Rule.PICKUP_MOVED, tuple(moved), scored, suggestions=suggestions)
    scored = _score(pool, scorer, capability, demand, chosen=set())
    return SourcingPlan(Rule.PICKUP_SHORT, (), scored, unfilled=remaining, suggestions=suggestions)


def _plan_ship(
    request: SourcingRequest, pool: list[Candidate], profile: SourcingProfile, demand: Demand
) -> SourcingPlan:
    scorer = Scorer(request, request.destination)
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
    request: SourcingRequest, pool: list[Candidate], profile: SourcingProfile, demand: Demand
) -> SourcingPlan:
    """Units a pickup store still needs (a transfer source failed): other stores ship them there."""
    store = next((c for c in pool if c.code == request.pickup_location), None)
    origin = store.coordinates if store else request.destination
    scorer = Scorer(request, origin)
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
    eligible: Sequence[Candidate], demand: Demand, scorer: Scorer, profile: SourcingProfile
) -> tuple[list[Allocation], Demand]:
    """Fewest locations first: one location, else the best pair, else a greedy cover."""
    scorer.remember(demand)
    need = scorer.per_sku(demand)
    total = sum(need.values())
    useful = [c for c in eligible if scorer.coverage(c, demand) > 0]
    useful.sort(key=scorer.preference)
    for c in useful:
        if scorer.coverage(c, demand) == total:
            allocations, remaining = _allocate_whole_lines([c], demand, scorer)
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
        allocations, remaining = _allocate_splitting_lines([first, second], demand, scorer, profile)
        if not remaining:
            return allocations, remaining
    return _greedy(widest[: profile.greedy_width], demand, scorer, profile)


def _pair_key(scorer: Scorer, first: Candidate, second: Candidate) -> tuple[int, float, int]:
    """As in preference(): an unknown distance ranks last, no capacity limit is most headroom."""
    distances = [d for d in (scorer.distance(first), scorer.distance(second)) if d is not None]
    headroom = sum(10**9 if h is None else h for h in (first.headroom, second.headroom))
    return (2 - len(distances), sum(distances), -headroom)


def _greedy(
    ranked: Sequence[Candidate], demand: Demand, scorer: Scorer, profile: SourcingProfile
) -> tuple[list[Allocation], Demand]:
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
            placed, remaining = _allocate_splitting_lines([pick], remaining, scorer, profile)
            allocations.extend(placed)
    return allocations, remaining


class _Placement:
    """Allocations being made for one demand; lines of one sku share that sku's stock."""

    def __init__(self, demand: Demand, scorer: Scorer) -> None:
        self.scorer = scorer
        self.remaining = dict(demand)
        self.allocations: list[Allocation] = []
        self._used: dict[tuple[str, str], int] = {}  # (location, sku) → units already placed

    def left_at(self, c: Candidate, sku: str) -> int:
        return max(0, c.available.get(sku, 0)) - self._used.get((c.code, sku), 0)

    def place(self, c: Candidate, key: str, sku: str, take: int) -> None:
        self.allocations.append(Allocation(c.code, key, sku, take))
        self._used[(c.code, sku)] = self._used.get((c.code, sku), 0) + take
        if take == self.remaining[key]:
            del self.remaining[key]
        else:
            self.remaining[key] -= take

    def whole_lines(self, ordered: Sequence[Candidate]) -> None:
        """Each line from the first location (in order) that holds all of it."""
        for key, wanted in list(self.remaining.items()):
            sku = self.scorer.line_sku[key]
            whole = next((c for c in ordered if self.left_at(c, sku) >= wanted), None)
            if whole is not None:
                self.place(whole, key, sku, wanted)

    def split_lines(self, ordered: Sequence[Candidate], floor: int) -> None:
        """What is left shared between the locations in order, no part worth less than ``floor``."""
        for c in ordered:
            for key, wanted in list(self.remaining.items()):
                sku = self.scorer.line_sku[key]
                take = min(self.left_at(c, sku), wanted)
                if take <= 0:
                    continue
                if take < wanted and floor:
                    price = self.scorer.price[key]
                    # Leave a remainder worth the minimum too, taking fewer units if need be.
                    keep = -(-floor // price) if price else 0
                    take = min(take, wanted - keep)
                    if take <= 0 or take * price < floor:
                        continue
                self.place(c, key, sku, take)


def _allocate_whole_lines(
    ordered: Sequence[Candidate], demand: Demand, scorer: Scorer
) -> tuple[list[Allocation], Demand]:
    """Serve ``demand`` from ``ordered`` locations without splitting any line."""
    placement = _Placement(demand, scorer)
    placement.whole_lines(ordered)
    return placement.allocations, placement.remaining


def _allocate_splitting_lines(
    ordered: Sequence[Candidate], demand: Demand, scorer: Scorer, profile: SourcingProfile
) -> tuple[list[Allocation], Demand]:
    """Whole lines first, then what is left may be shared between locations, no part worth less
    than the profile's minimum."""
    placement = _Placement(demand, scorer)
    placement.whole_lines(ordered)
    placement.split_lines(ordered, profile.min_split_line_value)
    return placement.allocations, placement.remaining


def _whole_order_locations(
    pool: Sequence[Candidate],
    scorer: Scorer,
    capability: str,
    demand: Demand,
    profile: SourcingProfile,
) -> tuple[str, ...]:
    return tuple(c.code for c in _serving_all(pool, scorer, capability, demand)[: profile.suggestion_limit])


def _serving_all(pool: Sequence[Candidate], scorer: Scorer, capability: str, demand: Demand) -> list[Candidate]:
    """The locations (not excluded, with the capability) holding every unit, nearest first."""
    total = sum(demand.values())
    serving = [
        c
        for c in pool
        if c.code not in scorer.request.excluded
        and capability in c.capabilities
        and scorer.coverage(c, demand) == total
    ]
    serving.sort(key=scorer.preference)
    return serving


def _score(
    pool: Sequence[Candidate],
    scorer: Scorer,
    capability: str,
    demand: Demand,
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
