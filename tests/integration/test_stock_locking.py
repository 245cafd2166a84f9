"""``lock_stock`` and ``apply_stock_changes`` against PostgreSQL: the canonical lock order, the
ledger agreeing with the levels, and the CHECK constraints as the last line of defence."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from orchestrator.inventory.model import MovementKind, StockPosition
from orchestrator.inventory.stock_sql import MissingStockLevel, StockChange, apply_stock_changes, lock_stock
from orchestrator.platform.db import constraint_name, sqlstate
from tests.integration.invariants import ledger_violations
from tests.integration.lock_waits import backend_pid, record_retries, until_waiting
from tests.integration.world import add_location, add_product, set_stock


async def _grid(db, locations: int, products: int, on_hand: int = 100) -> tuple[list[int], list[int]]:
    locs = [await add_location(db, f"L{i}") for i in range(1, locations + 1)]
    prods = [await add_product(db, f"P{i}") for i in range(1, products + 1)]
    for i in range(1, locations + 1):
        for j in range(1, products + 1):
            await set_stock(db, f"L{i}", f"P{j}", on_hand)
    return locs, prods


async def _row_is_locked(db, key: tuple[int, int]) -> bool:
    async with db.unit_of_work() as uow:
        try:
            await uow.session.execute(
                text("SELECT 1 FROM stock_levels WHERE location_id = :l AND product_id = :p FOR UPDATE NOWAIT"),
                {"l": key[0], "p": key[1]},
            )
        except DBAPIError as exc:
            assert sqlstate(exc) == "55P03", exc  # lock_not_available
            return True
        return False


async def test_lock_stock_takes_rows_in_location_then_product_order_whatever_the_input_order(db):
    (l1, l2, l3), (p1, p2) = await _grid(db, 3, 2)
    keys = [(l1, p2), (l2, p1), (l2, p2), (l3, p1)]  # canonical order
    async with db.unit_of_work() as holder, db.unit_of_work() as locker:
        await lock_stock(holder.session, [(l2, p1)])
        pid = await backend_pid(locker.session)
        # Ask for the keys backwards: the canonical order still locks (l1, p2) first, then
        # queues on (l2, p1) before touching the rows after it.
        locking = asyncio.create_task(lock_stock(locker.session, list(reversed(keys))))
        try:
            await until_waiting(db, pid)
            assert not locking.done()
            taken = {k: await _row_is_locked(db, k) for k in [(l1, p2), (l2, p2), (l3, p1)]}
            # The first key in canonical order is taken; the keys after the busy one are not yet.
            assert taken == {(l1, p2): True, (l2, p2): False, (l3, p1): False}
        finally:
            await holder.session.rollback()
            positions = await asyncio.wait_for(locking, timeout=10)
        assert positions == {k: StockPosition(100, 0, 0) for k in keys}


async def test_lock_stock_leaves_out_rows_that_do_not_exist(db):
    l1 = await add_location(db, "L1")
    p1, p2 = await add_product(db, "P1"), await add_product(db, "P2")
    await set_stock(db, "L1", "P1", 5)
    async with db.unit_of_work() as uow:
        assert await lock_stock(uow.session, [(l1, p2), (l1, p1), (l1, p1)]) == {(l1, p1): StockPosition(5, 0, 0)}
        assert await lock_stock(uow.session, []) == {}


async def test_transactions_locking_overlapping_rows_in_opposite_input_orders_never_deadlock(db):
    locs, prods = await _grid(db, 3, 3)
    keys = [(loc, prod) for loc in locs for prod in prods]
    rng = random.Random(11)
    deadlocks: list[BaseException] = []

    async def hold(order: list[tuple[int, int]], pause: float) -> None:
        async with db.unit_of_work() as uow:  # no retry: a deadlock would surface here
            try:
                positions = await lock_stock(uow.session, order)
                await asyncio.sleep(pause)
                await apply_stock_changes(
                    uow.session,
                    [
                        StockChange(k[0], k[1], MovementKind.RESERVATION, 0, 1, "lock test", "t")
                        for k in order
                        if positions[k].available > 0
                    ],
                    "test",
                )
                await uow.commit()
            except DBAPIError as exc:
                deadlocks.append(exc)

    pairs = []
    for _ in range(30):
        chosen = rng.sample(keys, rng.randint(3, 6))
        pause = rng.random() * 0.01
        pairs += [hold(chosen, pause), hold(list(reversed(chosen)), pause)]
    await asyncio.gather(*pairs)
    assert deadlocks == []
    assert await ledger_violations(db) == []
    async with db.unit_of_work() as uow:
        reserved = await uow.session.scalar(text("SELECT sum(reserved) FROM stock_levels"))
        rows = await uow.session.scalar(text("SELECT count(*) FROM inventory_movements WHERE kind = 'reservation'"))
    assert reserved == rows  # every transaction committed its one-unit reservations


async def test_apply_stock_changes_moves_each_level_by_exactly_the_sum_of_its_ledger_rows(db):
    (l1, l2), (p1, p2) = await _grid(db, 2, 2, on_hand=10)
    changes = [
        StockChange(l1, p1, MovementKind.RECEIPT, 5, 0, "delivery", "po-1"),
        StockChange(l1, p1, MovementKind.RESERVATION, 0, 4, "order", "o-1"),
        StockChange(l1, p1, MovementKind.PICK, -2, -2, "picked", "o-1"),
        StockChange(l2, p2, MovementKind.RESERVATION, 0, 3, "order", "o-2"),
        StockChange(l1, p1, MovementKind.RELEASE, 0, -1, "short pick", "o-1"),
    ]
    async with db.unit_of_work() as uow:
        await lock_stock(uow.session, {(c.location_id, c.product_id) for c in changes})
        await apply_stock_changes(uow.session, changes, "staff:ann")
        await uow.commit()
    async with db.unit_of_work() as uow:
        levels = {
            (r[0], r[1]): (r[2], r[3])
            for r in await uow.session.execute(
                text("SELECT location_id, product_id, on_hand, reserved FROM stock_levels")
            )
        }
        ledger = (
            await uow.session.execute(
                text(
                    "SELECT location_id, product_id, kind, on_hand_delta, reserved_delta, reason, actor, reference "
                    "FROM inventory_movements WHERE kind <> 'adjustment' ORDER BY id"
                )
            )
        ).all()
    assert levels == {(l1, p1): (13, 1), (l1, p2): (10, 0), (l2, p1): (10, 0), (l2, p2): (10, 3)}
    assert [tuple(r) for r in ledger] == [
        (
            c.location_id,
            c.product_id,
            c.kind.value,
            c.on_hand_delta,
            c.reserved_delta,
            c.reason,
            "staff:ann",
            c.reference,
        )
        for c in changes
    ]
    assert await ledger_violations(db) == []


async def test_apply_stock_changes_refuses_a_level_that_does_not_exist_rather_than_write_a_lone_ledger_row(
    db,
):
    l1 = await add_location(db, "L1")
    p1, p2 = await add_product(db, "P1"), await add_product(db, "P2")
    await set_stock(db, "L1", "P1", 5)
    async with db.unit_of_work() as uow:
        with pytest.raises(MissingStockLevel):
            await apply_stock_changes(
                uow.session,
                [
                    StockChange(l1, p1, MovementKind.RECEIPT, 1, 0, "delivery", "po"),
                    StockChange(l1, p2, MovementKind.RECEIPT, 3, 0, "delivery", "po"),
                ],
                "test",
            )
        await uow.commit()  # even a caller that commits anyway is left with a consistent ledger
    assert await ledger_violations(db) == []


async def test_database_refuses_reserving_more_than_is_on_hand_even_without_the_service_checks(db):
    (l1,), (p1,) = await _grid(db, 1, 1, on_hand=3)
    async with db.unit_of_work() as uow:
        with pytest.raises(IntegrityError) as refused:
            await apply_stock_changes(
                uow.session, [StockChange(l1, p1, MovementKind.RESERVATION, 0, 4, "x", "r")], "test"
            )
    assert "reserved_within_on_hand" in (constraint_name(refused.value) or "")
    async with db.unit_of_work() as uow:
        with pytest.raises(IntegrityError) as refused:
            await uow.session.execute(text("UPDATE stock_levels SET reserved = on_hand + 1"))
    assert "reserved_within_on_hand" in (constraint_name(refused.value) or "")
    async with db.unit_of_work() as uow:
        with pytest.raises(IntegrityError) as refused:
            await apply_stock_changes(uow.session, [StockChange(l1, p1, MovementKind.PICK, -4, 0, "x", "r")], "test")
    assert "on_hand_not_negative" in (constraint_name(refused.value) or "") or "reserved_within_on_hand" in (
        constraint_name(refused.value) or ""
    )
    async with db.unit_of_work() as uow:
        with pytest.raises(IntegrityError):
            await uow.session.execute(text("UPDATE stock_levels SET safety_stock = -1"))
    # Nothing of the refused statements stayed: no level moved, no ledger row was written.
    async with db.unit_of_work() as uow:
        assert (await uow.session.execute(text("SELECT on_hand, reserved, safety_stock FROM stock_levels"))).all() == [
            (3, 0, 0)
        ]
        assert await uow.session.scalar(text("SELECT count(*) FROM inventory_movements")) == 1  # the setup


async def test_a_deadlock_db_run_retries_away_is_still_recorded_by_record_retries(db, monkeypatch):
    """``db.run`` hides a deadlock from its caller by running the use case again; the concurrency
    tests assert "no deadlock" through ``record_retries``, which must therefore see this one."""
    (l1, l2), (p1,) = await _grid(db, 2, 1)
    retried = record_retries(monkeypatch)
    attempts: Counter[str] = Counter()
    holding = {"a": asyncio.Event(), "b": asyncio.Event()}
    pids: dict[str, int] = {}

    def crossing(name: str, first: tuple[int, int], second: tuple[int, int]):  # type: ignore[no-untyped-def]
        async def use_case(uow) -> None:  # type: ignore[no-untyped-def]
            attempts[name] += 1
            await lock_stock(uow.session, [first])
            if attempts[name] == 1:  # only the first attempt crosses the other; a retry just waits
                pids[name] = await backend_pid(uow.session)
                holding[name].set()
                await asyncio.gather(*(e.wait() for e in holding.values()))
                if name == "b":  # ask for the second row only once "a" queues for it: a sure deadlock
                    await until_waiting(db, pids["a"])
            await lock_stock(uow.session, [second])
            await uow.commit()

        return use_case

    await asyncio.wait_for(
        asyncio.gather(db.run(crossing("a", (l1, p1), (l2, p1))), db.run(crossing("b", (l2, p1), (l1, p1)))),
        timeout=30,
    )
    assert retried == ["40P01"]
    assert sum(attempts.values()) == 3
