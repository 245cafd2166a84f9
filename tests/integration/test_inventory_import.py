"""Bulk inventory import (COPY into a staging table, then one upsert): all or nothing, one ledger
row per changed level, never below what orders hold; and the CLI that drives it."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from orchestrator.inventory import bulk_import
from orchestrator.inventory.model import MovementKind
from orchestrator.inventory.stock_sql import StockChange, apply_stock_changes, ensure_stock_row, lock_stock
from orchestrator.platform.actors import Actor
from orchestrator.platform.db import Database, committing
from orchestrator.platform.errors import InsufficientStock
from tests.integration.invariants import all_violations
from tests.integration.lock_waits import backend_pid, queued_behind
from tests.integration.world import ADMIN, add_location, add_product, place, set_stock

ROOT = Path(__file__).resolve().parents[2]


async def import_inventory(db: Database, chunks: AsyncIterator[bytes], actor: Actor) -> bulk_import.ImportReport:
    """The import run as the CLI runs it: one committed attempt; a rejected file's report."""
    try:
        return await db.run(committing(lambda uow: bulk_import.import_inventory(uow, chunks, actor)), attempts=1)
    except bulk_import.ImportRejected as rejected:
        return rejected.report


async def _chunks(data: str, size: int = 7) -> AsyncIterator[bytes]:
    """The file in small pieces that split lines and numbers, as a network stream would."""
    raw = data.encode()
    for i in range(0, len(raw), size):
        yield raw[i : i + size]


async def _levels(db) -> dict[tuple[str, str], tuple[int, int]]:
    async with db.unit_of_work() as uow:
        rows = await uow.session.execute(
            text(
                "SELECT l.code, p.sku, s.on_hand, s.reserved FROM stock_levels s "
                "JOIN locations l ON l.id = s.location_id JOIN products p ON p.id = s.product_id"
            )
        )
        return {(r[0], r[1]): (r[2], r[3]) for r in rows}


async def _ledger(db) -> list[tuple]:
    async with db.unit_of_work() as uow:
        rows = await uow.session.execute(
            text(
                "SELECT l.code, p.sku, m.kind, m.on_hand_delta, m.reserved_delta, m.actor FROM inventory_movements m "
                "JOIN locations l ON l.id = m.location_id JOIN products p ON p.id = m.product_id ORDER BY m.id"
            )
        )
        return [tuple(r) for r in rows]


@pytest.fixture
async def catalogue(db):
    for code in ("S1", "S2"):
        await add_location(db, code)
    for sku in ("A", "B"):
        await add_product(db, sku)
    await set_stock(db, "S1", "A", 4)


async def test_import_sets_levels_and_writes_one_import_ledger_row_per_changed_level(db, catalogue):
    csv = "location,sku,on_hand\nS1,A,10\nS1,B,0\nS2,A,7\nS2,B,12\n"
    report = await import_inventory(db, _chunks(csv), ADMIN)
    assert (report.rows, report.changed, report.errors) == (4, 3, [])
    assert await _levels(db) == {
        ("S1", "A"): (10, 0),
        ("S1", "B"): (0, 0),
        ("S2", "A"): (7, 0),
        ("S2", "B"): (12, 0),
    }
    imports = [row for row in await _ledger(db) if row[2] == "import"]
    assert sorted(imports) == [
        ("S1", "A", "import", 6, 0, "admin:integration"),
        ("S2", "A", "import", 7, 0, "admin:integration"),
        ("S2", "B", "import", 12, 0, "admin:integration"),
    ]
    assert await all_violations(db) == []


async def test_importing_the_same_file_twice_changes_nothing_the_second_time(db, catalogue):
    csv = "location,sku,on_hand\nS1,A,10\nS2,B,3\n"
    assert (await import_inventory(db, _chunks(csv), ADMIN)).changed == 2
    ledger, levels = await _ledger(db), await _levels(db)
    again = await import_inventory(db, _chunks(csv, size=1000), ADMIN)
    assert (again.rows, again.changed, again.errors) == (2, 0, [])
    assert await _ledger(db) == ledger and await _levels(db) == levels


async def test_an_import_with_unknown_codes_or_negative_counts_imports_nothing_and_lists_every_problem(db, catalogue):
    csv = "location,sku,on_hand\nS1,A,10\nS1,ZZZ,5\nNOPE,B,1\nS2,B,-3\nS2,A,2\nS2,A,3\n"
    report = await import_inventory(db, _chunks(csv), ADMIN)
    assert report.changed == 0
    assert sorted(report.errors) == sorted(
        [
            "line 3: unknown sku ZZZ",
            "line 4: unknown location NOPE",
            "line 5: on_hand -3 is negative",
            "S2/A appears 2 times",
        ]
    )
    assert await _levels(db) == {("S1", "A"): (4, 0)}
    assert [row[2] for row in await _ledger(db)] == ["adjustment"]


async def test_an_unreadable_file_imports_nothing(db, catalogue):
    report = await import_inventory(db, _chunks("location,sku,on_hand\nS1,A,ten\n"), ADMIN)
    assert report.changed == 0 and report.errors and "unreadable" in report.errors[0]
    assert await _levels(db) == {("S1", "A"): (4, 0)}


async def test_an_import_that_would_put_a_level_below_its_reservations_is_refused_whole(db, clock, catalogue):
    await place(db, clock, [("A", 3)], location="S1")
    report = await import_inventory(db, _chunks("location,sku,on_hand\nS2,A,9\nS1,A,2\n"), ADMIN)
    assert report.changed == 0
    assert report.errors == ["S1/A: on_hand 2 is below the 3 units reserved"]
    assert await _levels(db) == {("S1", "A"): (4, 3)}
    ok = await import_inventory(db, _chunks("location,sku,on_hand\nS1,A,3\n"), ADMIN)
    assert ok.errors == [] and await _levels(db) == {("S1", "A"): (3, 3)}
    assert await all_violations(db) == []


async def test_an_import_racing_the_first_receipt_of_a_new_level_keeps_the_ledger_equal_to_the_level(db, catalogue):
    # S2/B has no stock row yet. A receipt creating it is in flight (uncommitted) when the import
    # of S2/B starts; the import must account for the receipt's units, not overwrite them unseen.
    async with db.unit_of_work() as receipt:
        s = receipt.session
        loc = await s.scalar(text("SELECT id FROM locations WHERE code = 'S2'"))
        prod = await s.scalar(text("SELECT id FROM products WHERE sku = 'B'"))
        await ensure_stock_row(s, loc, prod)
        await lock_stock(s, [(loc, prod)])
        await apply_stock_changes(s, [StockChange(loc, prod, MovementKind.RECEIPT, 5, 0, "delivery", "po")], "test")
        importing = asyncio.create_task(import_inventory(db, _chunks("location,sku,on_hand\nS2,B,8\n"), ADMIN))
        await queued_behind(db, await backend_pid(s), importing)  # the import waits for the new row
        await receipt.commit()
    report = await asyncio.wait_for(importing, timeout=10)
    assert report.errors == []
    assert (await _levels(db))[("S2", "B")] == (8, 0)
    assert await all_violations(db) == []


async def test_imports_racing_placements_never_leave_a_level_below_what_orders_hold(db, clock, catalogue):
    await set_stock(db, "S1", "A", 50)

    settled = 0
    progress = asyncio.Condition()

    async def order(i: int) -> bool:
        nonlocal settled
        try:
            await place(db, clock, [("A", 1)], location="S1", email=f"r{i}@example.com")
        except InsufficientStock:
            return False
        finally:
            async with progress:
                settled += 1
                progress.notify_all()
        return True

    async def count(on_hand: int, after_orders: int):  # type: ignore[no-untyped-def]
        # Each count lands at a different point of the rush: once so many placements settled.
        async with progress:
            await progress.wait_for(lambda: settled >= after_orders)
        return on_hand, await import_inventory(db, _chunks(f"location,sku,on_hand\nS1,A,{on_hand}\n", 1000), ADMIN)

    results = await asyncio.gather(
        *[order(i) for i in range(80)],
        count(45, 0),
        count(30, 10),
        count(38, 25),
        count(20, 40),
    )
    won = sum(r is True for r in results[:80])
    imports = results[80:]
    for on_hand, report in imports:
        assert report.errors == [] or report.errors[0].startswith(f"S1/A: on_hand {on_hand} is below the"), report
    level = (await _levels(db))[("S1", "A")]
    assert level[1] == won and level[1] <= level[0]
    assert await all_violations(db) == []


async def _cli(database_url: str, *args: str) -> tuple[int, str]:
    env = {
        **os.environ,
        "ORCHESTRATOR_DATABASE_URL": database_url,
        "COLUMNS": "200",
        "NO_COLOR": "1",
    }
    script = Path(sys.executable).parent / "orchestrator"  # the installed console script
    command = [str(script)] if script.exists() else [sys.executable, "-m", "orchestrator.cli"]
    proc = await asyncio.create_subprocess_exec(
        *command,
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, out.decode()


async def test_cli_import_reports_the_rows_and_a_bad_file_exits_1_without_importing(
    db, catalogue, database_url, tmp_path
):
    good = tmp_path / "stock.csv"
    good.write_text("location,sku,on_hand\nS1,A,11\nS2,B,6\nS1,B,0\n")
    code, out = await _cli(database_url, "import", "inventory", str(good))
    assert code == 0, out
    assert "imported 3 rows; 2 levels changed" in out
    assert await _levels(db) == {("S1", "A"): (11, 0), ("S2", "B"): (6, 0), ("S1", "B"): (0, 0)}

    bad = tmp_path / "bad.csv"
    bad.write_text("location,sku,on_hand\nS1,A,1\nS9,A,2\n")
    code, out = await _cli(database_url, "import", "inventory", str(bad))
    assert code == 1, out
    assert "nothing imported" in out and "line 3: unknown location S9" in out
    assert (await _levels(db))[("S1", "A")] == (11, 0)
    assert await all_violations(db) == []
