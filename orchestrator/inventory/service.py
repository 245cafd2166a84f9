"""Stock levels as staff and back-office systems change them; every change is a ledger row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import msgspec
from sqlalchemy import select, text

from orchestrator.catalogue.service import get_location, get_product
from orchestrator.catalogue.tables import Product
from orchestrator.inventory.model import MovementKind, StockPosition, check_new_on_hand, check_reason
from orchestrator.inventory.stock_sql import StockChange, apply_stock_changes, ensure_stock_row, lock_stock
from orchestrator.inventory.tables import InventoryMovement, StockLevel
from orchestrator.platform.actors import Actor
from orchestrator.platform.db import UnitOfWork
from orchestrator.platform.errors import InvalidRequest
from orchestrator.platform.pagination import Key, Keyset, Page


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


# One location's stock by sku (unique per location); its ledger newest first by id.
STOCK = Keyset(Key(Product.sku, str))
LEDGER = Keyset(Key(InventoryMovement.id, int, descending=True))


async def list_stock(
    uow: UnitOfWork, code: str, actor: Actor, *, cursor: str | None, limit: int, skus: list[str] | None = None
) -> Page[StockView]:
    loc = await get_location(uow, code, actor)
    query = (
        select(StockLevel, Product.sku)
        .join(Product, Product.id == StockLevel.product_id)
        .where(StockLevel.location_id == loc.id)
    )
    if skus:
        query = query.where(Product.sku.in_(skus))
    page = STOCK.page((await uow.session.execute(STOCK.query(query, cursor, limit))).all(), limit)
    return Page([stock_view(code, sku, level) for level, sku in page.items], page.next_cursor)


async def movements(
    uow: UnitOfWork, code: str, sku: str, actor: Actor, *, before: int | None, limit: int
) -> Page[MovementView]:
    """The ledger's cursor is the last id shown, a plain integer: the API documents it as one."""
    loc = await get_location(uow, code, actor)
    product = await get_product(uow, sku)
    query = select(InventoryMovement).where(
        InventoryMovement.location_id == loc.id, InventoryMovement.product_id == product.id
    )
    if before:
        query = query.where(LEDGER.after((before,)))
    page = LEDGER.page((await uow.session.execute(LEDGER.query(query, None, limit))).all(), limit)
    items = [
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
        for m in page.items
    ]
    return Page(items, str(items[-1].id) if page.next_cursor else None)


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
    uow: UnitOfWork, code: str, sku: str, update: StockUpdate, actor: Actor, now: datetime
) -> StockView:
    """Count or adjust one level under its row lock; the entry point commits."""
    reason = check_reason(update.reason)
    if update.safety_stock is not None and update.safety_stock < 0:
        raise InvalidRequest("safety_stock cannot be negative", field="safety_stock")
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
                    loc.id,  # type: ignore[arg-type]
                    product.id,  # type: ignore[arg-type]
                    update.kind,
                    target - position.on_hand,
                    0,
                    reason,
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
    return stock_view(code, sku, level)
