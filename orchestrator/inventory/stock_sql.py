"""Hot-path stock queries. Hand-written SQL: the ORM would read-modify-write where one statement
can lock, check and change rows in a fixed order.

``lock_stock`` is the only place that takes row locks on stock; every caller goes through it so
all transactions lock in one canonical order — (location_id, product_id) — and cannot deadlock
on each other.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.fulfillment.model import OPEN_STATES
from orchestrator.inventory.model import MovementKind, StockKey, StockPosition
from orchestrator.platform.db import fetch
from orchestrator.platform.geo import Coordinates
from orchestrator.sourcing.engine import Candidate


class MissingStockLevel(LookupError):
    """A change named a (location, product) without a stock row; no ledger row was written for it."""


@dataclass(frozen=True, slots=True)
class StockChange:
    """One ledger row; the stock level moves by the same deltas."""

    location_id: int
    product_id: int
    kind: MovementKind
    on_hand_delta: int = 0
    reserved_delta: int = 0
    reason: str | None = None
    reference: str | None = None


_LOCK = """
SELECT s.location_id, s.product_id, s.on_hand, s.reserved, s.safety_stock
FROM stock_levels s
JOIN unnest($1::int[], $2::int[]) AS k(l, p) ON s.location_id = k.l AND s.product_id = k.p
ORDER BY s.location_id, s.product_id
FOR UPDATE OF s
"""


async def lock_stock(session: AsyncSession, keys: Iterable[StockKey]) -> dict[StockKey, StockPosition]:
    """Lock the rows for ``keys`` in canonical order; absent rows are simply not returned."""
    ordered = sorted(set(keys))
    if not ordered:
        return {}
    rows = await fetch(session, _LOCK, [k[0] for k in ordered], [k[1] for k in ordered])
    return {(r[0], r[1]): StockPosition(r[2], r[3], r[4]) for r in rows}


_APPLY = text(
    """
    WITH levels AS (
        UPDATE stock_levels s
        SET on_hand = s.on_hand + d.on_hand_delta,
            reserved = s.reserved + d.reserved_delta,
            updated_at = now()
        FROM unnest(CAST(:l AS int[]), CAST(:p AS int[]), CAST(:dh AS int[]), CAST(:dr AS int[]))
             AS d(location_id, product_id, on_hand_delta, reserved_delta)
        WHERE s.location_id = d.location_id AND s.product_id = d.product_id
        RETURNING s.location_id, s.product_id
    )
    INSERT INTO inventory_movements
        (location_id, product_id, kind, on_hand_delta, reserved_delta, reason, actor, reference)
    SELECT m.location_id, m.product_id, m.kind, m.on_hand_delta, m.reserved_delta, m.reason,
           CAST(:actor AS text), m.reference
    FROM unnest(CAST(:ml AS int[]), CAST(:mp AS int[]), CAST(:mk AS text[]), CAST(:mdh AS int[]),
                CAST(:mdr AS int[]), CAST(:mr AS text[]), CAST(:mref AS text[])) WITH ORDINALITY
         AS m(location_id, product_id, kind, on_hand_delta, reserved_delta, reason, reference, n)
    -- Only rows whose level moved: a ledger row without its level would break the sums.
    JOIN levels v ON v.location_id = m.location_id AND v.product_id = m.product_id
    ORDER BY m.n
    RETURNING (SELECT count(*) FROM levels)
    """
)


async def apply_stock_changes(session: AsyncSession, changes: Sequence[StockChange], actor: str | None) -> None:
    """Move the levels and write the ledger in one statement. Callers hold the row locks
    (``lock_stock``) and have checked the rules; the table's CHECK constraints are the backstop."""
    if not changes:
        return
    totals: dict[StockKey, list[int]] = defaultdict(lambda: [0, 0])
    for c in changes:
        totals[(c.location_id, c.product_id)][0] += c.on_hand_delta
        totals[(c.location_id, c.product_id)][1] += c.reserved_delta
    keys = sorted(totals)
    result = await session.execute(
        _APPLY,
        {
            "l": [k[0] for k in keys],
            "p": [k[1] for k in keys],
            "dh": [totals[k][0] for k in keys],
            "dr": [totals[k][1] for k in keys],
            "actor": actor,
            "ml": [c.location_id for c in changes],
            "mp": [c.product_id for c in changes],
            "mk": [c.kind.value for c in changes],
            "mdh": [c.on_hand_delta for c in changes],
            "mdr": [c.reserved_delta for c in changes],
            "mr": [c.reason for c in changes],
            "mref": [c.reference for c in changes],
        },
    )
    moved = result.scalar() or 0
    if moved != len(keys):
        raise MissingStockLevel(f"{len(keys) - moved} of {len(keys)} stock levels do not exist; ensure_stock_row first")


_ENSURE = text(
    """
    INSERT INTO stock_levels (location_id, product_id, on_hand, reserved, safety_stock)
    VALUES (:l, :p, 0, 0, 0)
    ON CONFLICT (location_id, product_id) DO NOTHING
    """
)


async def ensure_stock_row(session: AsyncSession, location_id: int, product_id: int) -> None:
    await session.execute(_ENSURE, {"l": location_id, "p": product_id})


_OPEN = ", ".join(f"'{s.value}'" for s in sorted(OPEN_STATES))

# One row per location holding any requested unit: its stock as two arrays, the units of the
# basket it could serve ("coverage"), ranked by coverage and then nearness so that at 1,000
# stores only the few hundred that can matter are sent back.
_CANDIDATES = f"""
WITH need AS (
    SELECT * FROM unnest($1::int[], $2::int[]) AS n(product_id, quantity)
), stock AS (
    SELECT s.location_id,
           array_agg(s.product_id) AS product_ids,
           array_agg(s.on_hand - s.reserved - s.safety_stock) AS available,
           sum(least(s.on_hand - s.reserved - s.safety_stock, n.quantity)) AS coverage
    FROM stock_levels s JOIN need n ON n.product_id = s.product_id
    WHERE s.product_id = ANY($1::int[])  -- spelled out so the planner uses the product index
      AND s.on_hand - s.reserved - s.safety_stock > 0
      {{where}}
    GROUP BY s.location_id
)
SELECT l.id, l.code, l.lat, l.lon, l.capabilities, l.daily_capacity,
       CASE WHEN l.daily_capacity IS NULL THEN 0 ELSE (
           SELECT count(*) FROM fulfillment_orders f
           WHERE f.location_id = l.id AND f.status IN ({_OPEN})
       ) END AS open_fulfillments,
       a.product_ids, a.available
FROM stock a
JOIN locations l ON l.id = a.location_id
WHERE l.active
ORDER BY a.coverage DESC,
         CASE WHEN $3::float8 IS NULL OR l.lat IS NULL THEN 0
              ELSE (l.lat - $3) ^ 2 + ((l.lon - $4) * cos(radians($3))) ^ 2 END,
         l.code
LIMIT $5
"""
# Every location, or only the listed ones ($6): two statements so each keeps a plan that fits.
_CANDIDATES_ANYWHERE = _CANDIDATES.replace("{where}", "")
_CANDIDATES_AT = _CANDIDATES.replace("{where}", "AND s.location_id = ANY($6::int[])")


async def sourcing_candidates(
    session: AsyncSession,
    sku_by_product: dict[int, str],
    *,
    need: dict[int, int] | None = None,
    near: Coordinates | None = None,
    limit: int | None = None,
    only_locations: Sequence[int] | None = None,
) -> tuple[list[Candidate], dict[str, int]]:
    """Active locations holding any available unit of the requested products — the ``limit``
    best-covering, nearest first among equals — and the location ids by code."""
    products = list(sku_by_product)
    quantities = [need.get(p, 1) if need else 1 for p in products]
    params = [products, quantities, near.lat if near else None, near.lon if near else None, limit]
    if only_locations:
        rows = await fetch(session, _CANDIDATES_AT, *params, list(only_locations))
    else:
        rows = await fetch(session, _CANDIDATES_ANYWHERE, *params)
    candidates, ids = [], {}
    for location_id, code, lat, lon, caps, capacity, open_count, product_ids, available in rows:
        candidates.append(
            Candidate(
                code=code,
                coordinates=Coordinates(lat, lon) if lat is not None and lon is not None else None,
                capabilities=frozenset(caps),
                available={sku_by_product[p]: a for p, a in zip(product_ids, available, strict=True)},
                daily_capacity=capacity,
                open_fulfillments=open_count,
            )
        )
        ids[code] = location_id
    return candidates, ids
