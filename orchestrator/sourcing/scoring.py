"""How the engine weighs a candidate for one request: distance from the origin, capacity
headroom, eligibility, and the units of a demand it could serve. Pure; no I/O."""

from __future__ import annotations

from orchestrator.platform.geo import Coordinates, distance_km
from orchestrator.sourcing.model import Candidate, SourcingRequest

Demand = dict[str, int]  # line_key → quantity still to source


class Scorer:
    """Distances and eligibility for one request, computed once per candidate."""

    def __init__(self, request: SourcingRequest, origin: Coordinates | None) -> None:
        self.request = request
        self.origin = origin
        self.line_sku = {line.line_key: line.sku for line in request.lines}
        self.price = {line.line_key: line.unit_price for line in request.lines}
        self._distance: dict[str, float | None] = {}
        self._preference: dict[str, tuple[float, int, str]] = {}
        self._covered_demand: Demand | None = None
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

    def coverage(self, c: Candidate, demand: Demand) -> int:
        """Units of ``demand`` that ``c`` could serve; lines of one sku share that sku's stock."""
        if demand is self._covered_demand:
            cached = self._coverage.get(c.code)
            if cached is None:
                cached = self._coverage[c.code] = self._count(c, self._per_sku)
            return cached
        return self._count(c, self.per_sku(demand))

    def remember(self, demand: Demand) -> None:
        """Coverage of this demand is asked for again and again (ranking, scoring): memoise it."""
        self._covered_demand = demand
        self._per_sku = self.per_sku(demand)
        self._coverage = {}

    def per_sku(self, demand: Demand) -> dict[str, int]:
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
