"""Stock levels as staff and back-office systems change them; every change is a ledger row."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable
from dataclasses import dataclass
from datetime import datetime

import msgspec
from sqlalchemy import select, text

from orchestrator.catalogue.service import get_location, get_product
from orchestrator.catalogue.tables import InventoryMovement, Product, StockLevel
from orchestrator.inventory.model import MovementKind, StockPosition, check_new_on_hand, check_reason
from orchestrator.inventory.stock_sql import StockChange, apply_stock_changes, ensure_stock_row, lock_stock
from orchestrator.platform.actors import Actor
from orchestrator.platform.db import Database, UnitOfWork
from orchestrator.platform.errors import InvalidRequest


class StockView(msgspec.Struct, kw_only=True):
    location: str
    sku: str
    on_hand: int
    reserved: int
    safety_stock: int
    available: int
    updated_at: datetime | None = None


class MovementView(msgspec.Struct, kw_only=True):
    id: int
    kind: str
    on_hand_delta: int
    reserved_delta: int
    reason: str | None
    actor: str | None
    reference: str | None
    created_at: datetime


def stock_view(code: str, sku: str, level: StockLevel | None) -> StockView:
    if level is None:
        return StockView(location=code, sku=sku, on_hand=0, reserved=0, safety_stock=0, available=0)
    position = StockPosition(level.on_hand, level.reserved, level.safety_stock)
    return StockView(
        location=code,
        sku=sku,
        on_hand=level.on_hand,
        reserved=level.reserved,
        safety_stock=level.safety_stock,
        available=position.available,
        updated_at=level.updated_at,
    )


async def read_stock(uow: UnitOfWork, code: str, sku: str, actor: Actor) -> StockView:
    loc = await get_location(uow, code, actor)
    product = await get_product(uow, sku)
    level = await uow.session.get(StockLevel, (loc.id, product.id))
    return stock_view(code, sku, level)


async def list_stock(
    uow: UnitOfWork, code: str, actor: Actor, *, after: str | None, limit: int, skus: list[str] | None = None
) -> list[StockView]:
    loc = await get_location(uow, code, actor)
    query = (
        select(StockLevel, Product.sku)
        .join(Product, Product.id == StockLevel.product_id)
        .where(StockLevel.location_id == loc.id)
        .order_by(Product.sku)
        .limit(limit + 1)
    )
    if after:
        query = query.where(Product.sku > after)
    if skus:
        query = query.where(Product.sku.in_(skus))
    rows = await uow.session.execute(query)
    return [stock_view(code, sku, level) for level, sku in rows]


async def movements(
    uow: UnitOfWork, code: str, sku: str, actor: Actor, *, before: int | None, limit: int
) -> list[MovementView]:
    loc = await get_location(uow, code, actor)
    product = await get_product(uow, sku)
    query = (
        select(InventoryMovement)
        .where(InventoryMovement.location_id == loc.id, InventoryMovement.product_id == product.id)
        .order_by(InventoryMovement.id.desc())
        .limit(limit + 1)
    )
    if before:
        query = query.where(InventoryMovement.id < before)
    rows = await uow.session.execute(query)
    return [
        MovementView(
            id=m.id,
            kind=m.kind,
            on_hand_delta=m.on_hand_delta,
            reserved_delta=m.reserved_delta,
            reason=m.reason,
            actor=m.actor,
            reference=m.reference,
            created_at=m.created_at,
        )
        for m in rows.scalars()
    ]


@dataclass(frozen=True)
class StockUpdate:
    """Either an absolute count (``on_hand``) or a ``delta``; ``safety_stock`` optional."""

    reason: str
    on_hand: int | None = None
    delta: int | None = None
    safety_stock: int | None = None
    kind: MovementKind = MovementKind.ADJUSTMENT
    reference: str | None = None


async def change_stock(
    db: Database, code: str, sku: str, update: StockUpdate, actor: Actor, now: datetime
) -> StockView:
    reason = check_reason(update.reason)
    if update.safety_stock is not None and update.safety_stock < 0:
        raise InvalidRequest("safety_stock cannot be negative", field="safety_stock")

    async def attempt(uow: UnitOfWork) -> StockView:
        loc = await get_location(uow, code, actor)
        product = await get_product(uow, sku)
        session = uow.session
        await ensure_stock_row(session, loc.id, product.id)  # type: ignore[arg-type]
        key = (loc.id, product.id)
        position = (await lock_stock(session, [key]))[key]  # type: ignore[index]
        target = update.on_hand if update.on_hand is not None else position.on_hand + (update.delta or 0)
        check_new_on_hand(target, position.reserved)
        if target != position.on_hand:
            await apply_stock_changes(
                session,
                [
                    StockChange(
                        loc.id,
                        product.id,
                        update.kind,
                        target - position.on_hand,
                        0,
                        reason,  # type: ignore[arg-type]
                        update.reference,
                    )
                ],
                actor.label,
            )
        if update.safety_stock is not None:
            await session.execute(
                text(
                    "UPDATE stock_levels SET safety_stock = :s, updated_at = :now "
                    "WHERE location_id = :l AND product_id = :p"
                ),
                {"s": update.safety_stock, "now": now, "l": loc.id, "p": product.id},
            )
        level = await session.get(StockLevel, key, populate_existing=True)
        view = stock_view(code, sku, level)
        await uow.commit()
        return view

    return await db.run(attempt)


@dataclass(frozen=True)
class ImportReport:
    rows: int
    changed: int
    errors: list[str]


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

_IMPORT_LOCK = text(
    """
    SELECT format('%s/%s: on_hand %s is below the %s units reserved', i.location, i.sku, i.on_hand,
                  sl.reserved)
    FROM (
        SELECT sl.location_id, sl.product_id, sl.reserved FROM stock_levels sl
        JOIN locations l ON l.id = sl.location_id
        JOIN products p ON p.id = sl.product_id
        JOIN inventory_import s ON s.location = l.code AND s.sku = p.sku
        ORDER BY sl.location_id, sl.product_id
        FOR UPDATE OF sl
    ) sl
    JOIN locations l ON l.id = sl.location_id
    JOIN products p ON p.id = sl.product_id
    JOIN inventory_import i ON i.location = l.code AND i.sku = p.sku
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


async def import_inventory(db: Database, chunks: AsyncIterable[bytes], actor: Actor) -> ImportReport:
    """CSV ``location,sku,on_hand`` (with a header) → COPY into a staging table → checks → one
    ledger insert and one upsert. All of it or none of it."""
    reference = f"import:{uuid.uuid4()}"
    async with db.unit_of_work() as uow:
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
            return ImportReport(0, 0, [f"unreadable CSV: {message}"])
        rows = await session.scalar(text("SELECT count(*) FROM inventory_import"))
        errors = list((await session.execute(_IMPORT_CHECKS)).scalars())
        if not errors:
            await session.execute(_IMPORT_ENSURE)
            errors = list((await session.execute(_IMPORT_LOCK)).scalars())
        if errors:
            return ImportReport(int(rows or 0), 0, errors)
        changed = (await session.execute(_IMPORT_LEDGER, {"actor": actor.label, "reference": reference})).rowcount
        await session.execute(_IMPORT_UPSERT)
        await uow.commit()
        return ImportReport(int(rows or 0), int(changed or 0), [])
