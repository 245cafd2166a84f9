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

from orchestrator.inventory.model import MovementKind, StockKey, StockPosition
from orchestrator.platform.db import fetch

# What a new order may reserve from the stock row aliased ``s``: the one spelling of "available"
# in SQL, for the hand-written hot-path statements (``StockPosition.available`` is the same rule
# in Python, floored at zero). Positive exactly when the row has something to offer.
AVAILABLE = "(s.on_hand - s.reserved - s.safety_stock)"


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
