"""The stock invariants every integration test checks, read straight from the database.

Each function returns a list of human-readable violations; a test asserts the list is empty, so a
failure names the offending (location, product) or order line.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.platform.db import Database

_NEGATIVE = text(
    """
    SELECT location_id, product_id, on_hand, reserved, safety_stock FROM stock_levels
    WHERE on_hand < 0 OR reserved < 0 OR safety_stock < 0 OR on_hand - reserved < 0
    ORDER BY 1, 2
    """
)

_RESERVED_VS_RESERVATIONS = text(
    """
    SELECT coalesce(s.location_id, r.location_id), coalesce(s.product_id, r.product_id),
           coalesce(s.reserved, 0), coalesce(r.quantity, 0)
    FROM stock_levels s
    FULL JOIN (
        SELECT location_id, product_id, sum(quantity) AS quantity FROM reservations
        WHERE status = 'active' GROUP BY location_id, product_id
    ) r ON r.location_id = s.location_id AND r.product_id = s.product_id
    WHERE coalesce(s.reserved, 0) <> coalesce(r.quantity, 0)
    ORDER BY 1, 2
    """
)

_LEDGER_VS_LEVELS = text(
    """
    SELECT coalesce(s.location_id, m.location_id), coalesce(s.product_id, m.product_id),
           coalesce(s.on_hand, 0), coalesce(m.on_hand, 0), coalesce(s.reserved, 0), coalesce(m.reserved, 0)
    FROM stock_levels s
    FULL JOIN (
        SELECT location_id, product_id, sum(on_hand_delta) AS on_hand, sum(reserved_delta) AS reserved
        FROM inventory_movements GROUP BY location_id, product_id
    ) m ON m.location_id = s.location_id AND m.product_id = s.product_id
    WHERE coalesce(s.on_hand, 0) <> coalesce(m.on_hand, 0) OR coalesce(s.reserved, 0) <> coalesce(m.reserved, 0)
    ORDER BY 1, 2
    """
)

# Before anything is picked, every open unit of an order line is held by exactly one active
# reservation (at the pickup store, or at the source of a transfer feeding it).
_ORDER_LINES_VS_RESERVATIONS = text(
    """
    SELECT ol.order_id, ol.line_no, ol.sku,
           ol.quantity - ol.quantity_cancelled - ol.quantity_unsourced - ol.quantity_fulfilled AS open_units,
           coalesce(sum(r.quantity) FILTER (WHERE r.status = 'active'), 0) AS held
    FROM order_lines ol
    LEFT JOIN fulfillment_order_lines fl ON fl.order_line_id = ol.id
    LEFT JOIN reservations r ON r.fulfillment_order_line_id = fl.id
    GROUP BY ol.id
    HAVING ol.quantity - ol.quantity_cancelled - ol.quantity_unsourced - ol.quantity_fulfilled
           <> coalesce(sum(r.quantity) FILTER (WHERE r.status = 'active'), 0)
    ORDER BY 1, 2
    """
)

_RESERVATION_ELSEWHERE = text(
    """
    SELECT r.id, r.location_id, f.location_id FROM reservations r
    JOIN fulfillment_order_lines fl ON fl.id = r.fulfillment_order_line_id
    JOIN fulfillment_orders f ON f.id = fl.fulfillment_order_id
    WHERE r.status = 'active' AND r.location_id <> f.location_id
    """
)

_CANCELLED_HOLDING = text(
    """
    SELECT o.id, sum(r.quantity) FROM orders o
    JOIN fulfillment_orders f ON f.order_id = o.id
    JOIN fulfillment_order_lines fl ON fl.fulfillment_order_id = f.id
    JOIN reservations r ON r.fulfillment_order_line_id = fl.id AND r.status = 'active'
    WHERE o.status = 'cancelled' OR f.status IN ('cancelled', 'rejected')
    GROUP BY o.id
    """
)


_OPEN_STATES_SQL = "('pending', 'accepted', 'picking', 'ready_for_pickup', 'packed')"

# An active reservation belongs to a fulfillment line that is still open, and an open line holds
# exactly its unpicked units: those of a pickup line that travel on a transfer feeding it are held
# by the transfer's line (at its source, or picked and on the way) until the transfer arrives.
# Holds at every point of the lifecycle, picked or not.
_FULFILLMENT_LINES_VS_RESERVATIONS = text(
    f"""
    WITH incoming AS (
        SELECT t.feeds_fulfillment_id AS fo_id, tl.order_line_id,
               sum(tl.quantity - tl.quantity_cancelled - tl.quantity_handed_over) AS units
        FROM fulfillment_orders t JOIN fulfillment_order_lines tl ON tl.fulfillment_order_id = t.id
        WHERE t.feeds_fulfillment_id IS NOT NULL
        GROUP BY 1, 2
    ), held AS (
        SELECT fulfillment_order_line_id AS line_id, sum(quantity) AS units FROM reservations
        WHERE status = 'active' GROUP BY 1
    )
    SELECT f.order_id, f.id, f.status, fl.sku,
           CASE WHEN f.status IN {_OPEN_STATES_SQL}
                THEN fl.quantity - fl.quantity_cancelled - fl.quantity_picked - coalesce(i.units, 0)
                ELSE 0 END AS due,
           coalesce(h.units, 0) AS held
    FROM fulfillment_order_lines fl
    JOIN fulfillment_orders f ON f.id = fl.fulfillment_order_id
    LEFT JOIN incoming i ON i.fo_id = f.id AND i.order_line_id = fl.order_line_id
    LEFT JOIN held h ON h.line_id = fl.id
    WHERE coalesce(h.units, 0) <> CASE WHEN f.status IN {_OPEN_STATES_SQL}
                THEN fl.quantity - fl.quantity_cancelled - fl.quantity_picked - coalesce(i.units, 0)
                ELSE 0 END
    ORDER BY 1, 2, 4
    """
)

# Every unit of an order line is accounted for exactly once: handed over, cancelled, unsourced, or
# still due on a customer-facing fulfillment line (transfers only move units between stores).
_ORDER_LINES_ACCOUNTED = text(
    """
    SELECT ol.order_id, ol.line_no, ol.sku,
           ol.quantity - ol.quantity_cancelled - ol.quantity_unsourced - ol.quantity_fulfilled AS open_units,
           coalesce(sum(fl.quantity - fl.quantity_cancelled - fl.quantity_handed_over), 0) AS due
    FROM order_lines ol
    LEFT JOIN fulfillment_order_lines fl ON fl.order_line_id = ol.id
        AND fl.fulfillment_order_id IN (SELECT id FROM fulfillment_orders WHERE method <> 'transfer')
    GROUP BY ol.id
    HAVING ol.quantity - ol.quantity_cancelled - ol.quantity_unsourced - ol.quantity_fulfilled
           <> coalesce(sum(fl.quantity - fl.quantity_cancelled - fl.quantity_handed_over), 0)
    ORDER BY 1, 2
    """
)


async def _violations(db: Database, *, levels: bool, reservations: bool, ledger: bool) -> list[str]:
    out: list[str] = []
    async with db.unit_of_work() as uow:
        s = uow.session
        if levels:
            for loc, prod, on_hand, reserved, safety in await s.execute(_NEGATIVE):
                out.append(f"({loc},{prod}) negative: on_hand={on_hand} reserved={reserved} safety={safety}")
        if reservations:
            for loc, prod, reserved, held in await s.execute(_RESERVED_VS_RESERVATIONS):
                out.append(f"({loc},{prod}) reserved={reserved} but active reservations hold {held}")
        if ledger:
            for loc, prod, on_hand, led_on_hand, reserved, led_reserved in await s.execute(_LEDGER_VS_LEVELS):
                out.append(
                    f"({loc},{prod}) level on_hand={on_hand} reserved={reserved} but ledger sums to "
                    f"on_hand={led_on_hand} reserved={led_reserved}"
                )
    return out


async def stock_violations(db: Database) -> list[str]:
    """on_hand − reserved never negative; reserved = Σ active reservations; the ledger sums to
    the levels, for every (location, product)."""
    return await _violations(db, levels=True, reservations=True, ledger=True)


async def ledger_violations(db: Database) -> list[str]:
    """Levels never negative and equal to the sums of their ledger rows (for tests that move stock
    below the reservation rows)."""
    return await _violations(db, levels=True, reservations=False, ledger=True)


async def _misplaced_holds(s: AsyncSession) -> list[str]:
    """Reservations at another store than their fulfillment's; cancelled orders still holding."""
    out: list[str] = []
    for rid, at, fo_at in await s.execute(_RESERVATION_ELSEWHERE):
        out.append(f"reservation {rid} at location {at} for a fulfillment at {fo_at}")
    for order_id, held in await s.execute(_CANCELLED_HOLDING):
        out.append(f"cancelled order/fulfillment of {order_id} still holds {held} units")
    return out


async def order_violations(db: Database) -> list[str]:
    """For orders nothing has been picked from: each line's open units equal its active
    reservations, reservations sit where their fulfillment is, closed orders hold nothing."""
    out: list[str] = []
    async with db.unit_of_work() as uow:
        s = uow.session
        for order_id, line_no, sku, open_units, held in await s.execute(_ORDER_LINES_VS_RESERVATIONS):
            out.append(f"order {order_id} line {line_no} ({sku}): {open_units} open units, {held} reserved")
        out += await _misplaced_holds(s)
    return out


async def fulfillment_violations(db: Database) -> list[str]:
    """At any point of the lifecycle: an active reservation belongs only to an open fulfillment
    line and the line's active reservations equal its open (unpicked, not travelling) units;
    reservations sit where their fulfillment is; cancelled orders hold nothing; every unit of an
    order line is handed over, cancelled, unsourced or due on exactly one fulfillment."""
    out: list[str] = []
    async with db.unit_of_work() as uow:
        s = uow.session
        for order_id, fo_id, status, sku, due, held in await s.execute(_FULFILLMENT_LINES_VS_RESERVATIONS):
            out.append(f"order {order_id} fulfillment {fo_id} ({status}) line {sku}: {due} open units, {held} reserved")
        for order_id, line_no, sku, open_units, due in await s.execute(_ORDER_LINES_ACCOUNTED):
            out.append(f"order {order_id} line {line_no} ({sku}): {open_units} open units, {due} due on fulfillments")
        out += await _misplaced_holds(s)
    return out


async def lifecycle_violations(db: Database) -> list[str]:
    """Every invariant that holds whatever has happened to the orders (picks included)."""
    return await stock_violations(db) + await fulfillment_violations(db)


async def all_violations(db: Database) -> list[str]:
    """For tests where nothing has been picked: the lifecycle invariants, and every open unit of
    an order line reserved."""
    return await lifecycle_violations(db) + await order_violations(db)
