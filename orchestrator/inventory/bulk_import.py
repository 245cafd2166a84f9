"""Bulk inventory import: a CSV of counts COPYed into a staging table, checked, then one ledger
insert and one upsert. All of it or none of it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable
from dataclasses import dataclass

from sqlalchemy import text

from orchestrator.inventory.stock_sql import lock_stock
from orchestrator.platform.actors import Actor
from orchestrator.platform.db import UnitOfWork


@dataclass(frozen=True)
class ImportReport:
    rows: int
    changed: int
    errors: list[str]


class ImportRejected(Exception):
    """The file has problems; nothing of it may be written (the unit of work rolls back)."""

    def __init__(self, report: ImportReport) -> None:
        super().__init__(f"inventory import rejected: {len(report.errors)} problem(s)")
        self.report = report


_IMPORT_CHECKS = text(
    """
    SELECT format('line %s: unknown location %s', s.line, s.location) FROM inventory_import s
      LEFT JOIN locations l ON l.code = s.location WHERE l.id IS NULL
    UNION ALL
    SELECT format('line %s: unknown sku %s', s.line, s.sku) FROM inventory_import s
      LEFT JOIN products p ON p.sku = s.sku WHERE p.id IS NULL
    UNION ALL
    SELECT format('line %s: on_hand %s is negative', s.line, s.on_hand) FROM inventory_import s
      WHERE s.on_hand < 0
    UNION ALL
    SELECT format('%s/%s appears %s times', s.location, s.sku, count(*)) FROM inventory_import s
      GROUP BY s.location, s.sku HAVING count(*) > 1
    LIMIT 50
    """
)

# Every imported level gets a row before the rows are locked: a level first created by a
# concurrent receipt is then waited for and counted, not overwritten unseen by the upsert.
_IMPORT_ENSURE = text(
    """
    INSERT INTO stock_levels (location_id, product_id, on_hand, reserved, safety_stock, updated_at)
    SELECT l.id, p.id, 0, 0, 0, now()
    FROM inventory_import s
    JOIN locations l ON l.code = s.location
    JOIN products p ON p.sku = s.sku
    ORDER BY l.id, p.id
    ON CONFLICT (location_id, product_id) DO NOTHING
    """
)

_IMPORT_KEYS = text(
    """
    SELECT l.id, p.id FROM inventory_import s
    JOIN locations l ON l.code = s.location
    JOIN products p ON p.sku = s.sku
    """
)

# Read after ``lock_stock`` took every imported row: what orders hold cannot move under it.
_IMPORT_BELOW_RESERVED = text(
    """
    SELECT format('%s/%s: on_hand %s is below the %s units reserved', i.location, i.sku, i.on_hand,
                  sl.reserved)
    FROM inventory_import i
    JOIN locations l ON l.code = i.location
    JOIN products p ON p.sku = i.sku
    JOIN stock_levels sl ON sl.location_id = l.id AND sl.product_id = p.id
    WHERE i.on_hand < sl.reserved
    LIMIT 50
    """
)

_IMPORT_LEDGER = text(
    """
    INSERT INTO inventory_movements (location_id, product_id, kind, on_hand_delta, reserved_delta,
                                     reason, actor, reference)
    SELECT l.id, p.id, 'import', s.on_hand - COALESCE(sl.on_hand, 0), 0, 'inventory import',
           :actor, :reference
    FROM inventory_import s
    JOIN locations l ON l.code = s.location
    JOIN products p ON p.sku = s.sku
    LEFT JOIN stock_levels sl ON sl.location_id = l.id AND sl.product_id = p.id
    WHERE s.on_hand <> COALESCE(sl.on_hand, 0)
    """
)

_IMPORT_UPSERT = text(
    """
    INSERT INTO stock_levels (location_id, product_id, on_hand, reserved, safety_stock, updated_at)
    SELECT l.id, p.id, s.on_hand, 0, 0, now()
    FROM inventory_import s
    JOIN locations l ON l.code = s.location
    JOIN products p ON p.sku = s.sku
    ORDER BY l.id, p.id
    ON CONFLICT (location_id, product_id) DO UPDATE
      SET on_hand = EXCLUDED.on_hand, updated_at = now()
      WHERE stock_levels.on_hand <> EXCLUDED.on_hand
    """
)


async def import_inventory(uow: UnitOfWork, chunks: AsyncIterable[bytes], actor: Actor) -> ImportReport:
    """CSV ``location,sku,on_hand`` (with a header) → COPY into a staging table → checks → one
    ledger insert and one upsert. Raises ``ImportRejected`` (with every problem found) instead of
    writing any of a faulty file. ``chunks`` is read once: an entry point runs this in a single
    attempt (``db.run(..., attempts=1)``), there is no stream left to retry with."""
    reference = f"import:{uuid.uuid4()}"
    session = uow.session
    await session.execute(
        text(
            "CREATE TEMP TABLE inventory_import (location text NOT NULL, sku text NOT NULL, "
            "on_hand integer NOT NULL, line bigint GENERATED ALWAYS AS IDENTITY (START 2)) ON COMMIT DROP"
        )
    )
    raw = await (await session.connection()).get_raw_connection()
    try:
        await raw.driver_connection.copy_to_table(  # type: ignore[union-attr]
            "inventory_import",
            source=chunks,
            columns=["location", "sku", "on_hand"],
            format="csv",
            header=True,
        )
    except Exception as exc:  # asyncpg reports CSV faults as data errors of many kinds
        message = str(exc).splitlines()[0]
        raise ImportRejected(ImportReport(0, 0, [f"unreadable CSV: {message}"])) from None
    rows = await session.scalar(text("SELECT count(*) FROM inventory_import"))
    errors = list((await session.execute(_IMPORT_CHECKS)).scalars())
    if not errors:
        await session.execute(_IMPORT_ENSURE)
        keys = [(location_id, product_id) for location_id, product_id in await session.execute(_IMPORT_KEYS)]
        await lock_stock(session, keys)
        errors = list((await session.execute(_IMPORT_BELOW_RESERVED)).scalars())
    if errors:
        raise ImportRejected(ImportReport(int(rows or 0), 0, errors))
    changed = (await session.execute(_IMPORT_LEDGER, {"actor": actor.label, "reference": reference})).rowcount
    await session.execute(_IMPORT_UPSERT)
    return ImportReport(int(rows or 0), int(changed or 0), [])
