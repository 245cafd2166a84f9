"""One transaction rule: a use case works in the unit of work it is given and never commits it;
the entry point runs it through ``db.run`` and commits. So use cases combine into one
transaction, all of it or none of it."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from orchestrator.catalogue import service as catalogue
from orchestrator.catalogue.tables import Location, Product
from orchestrator.inventory.service import StockUpdate, change_stock
from orchestrator.platform.db import committing
from orchestrator.platform.errors import AlreadyExists
from tests.integration.world import ADMIN, NOW, add_location, add_product


async def _count(db, table) -> int:  # type: ignore[no-untyped-def]
    return await db.run(lambda uow: uow.session.scalar(select(func.count()).select_from(table)))


async def test_a_catalogue_use_case_leaves_the_commit_to_its_entry_point(db):
    async with db.unit_of_work() as uow:
        await catalogue.create_location(uow, {"code": "S1", "name": "Store"}, NOW)
        await catalogue.create_product(uow, {"sku": "A", "name": "A"}, NOW)
        await catalogue.update_location(uow, "S1", {"name": "Renamed"}, ADMIN, NOW)
    assert (await _count(db, Location), await _count(db, Product)) == (0, 0)


async def test_a_stock_change_leaves_the_commit_to_its_entry_point(db):
    await add_location(db, "S1")
    await add_product(db, "A")
    async with db.unit_of_work() as uow:
        view = await change_stock(uow, "S1", "A", StockUpdate(reason="count", on_hand=5), ADMIN, NOW)
    assert view.on_hand == 5
    stock = await db.run(lambda uow: change_stock(uow, "S1", "A", StockUpdate(reason="x", delta=0), ADMIN, NOW))
    assert stock.on_hand == 0


async def test_use_cases_combine_into_one_transaction_that_commits_or_not_at_all(db):
    async def open_store_with_product(uow):  # type: ignore[no-untyped-def]
        await catalogue.create_location(uow, {"code": "S1", "name": "Store"}, NOW)
        await catalogue.create_product(uow, {"sku": "A", "name": "A"}, NOW)
        return await change_stock(uow, "S1", "A", StockUpdate(reason="opening", on_hand=3), ADMIN, NOW)

    assert (await db.run(committing(open_store_with_product))).on_hand == 3
    assert (await _count(db, Location), await _count(db, Product)) == (1, 1)

    async def second_store_with_a_taken_sku(uow):  # type: ignore[no-untyped-def]
        await catalogue.create_location(uow, {"code": "S2", "name": "Second"}, NOW)
        await catalogue.create_product(uow, {"sku": "A", "name": "again"}, NOW)

    with pytest.raises(AlreadyExists):
        await db.run(committing(second_store_with_a_taken_sku))
    assert await _count(db, Location) == 1  # S2 went with the failed product
