"""One transaction rule for every entry point: a use case writes in the unit of work it is given and
never commits it; the entry point commits (``db.run(committing(...))``). Run bare in ``db.run``,
every use case below leaves the database as it found it, and two of them can share one
transaction: both stand, or neither does."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text

from orchestrator.fulfillment import timers as pickup_timers
from orchestrator.fulfillment.requests import Accept, HandOver, MarkReady, Pick, StartPicking
from orchestrator.fulfillment.service import LifecycleSettings, resend_pickup_code, transition
from orchestrator.orders.changes import cancel_order, record_arrival
from orchestrator.orders.intake import place_order
from orchestrator.platform.db import KeepWritesAndRaise, UnitOfWork, committing
from orchestrator.platform.errors import VersionMismatch, WrongPickupCode
from tests.integration.world import ADMIN, WEB, act, add_location, add_product, order_command, place, set_stock

LIFECYCLE = LifecycleSettings(secret="rule-secret")


async def _state(db) -> dict:
    """Everything the use cases below could write."""
    queries = {
        "orders": "SELECT coalesce(jsonb_agg(o ORDER BY o.id), '[]') FROM orders o",
        "fulfillments": "SELECT coalesce(jsonb_agg(f ORDER BY f.id), '[]') FROM fulfillment_orders f",
        "lines": "SELECT coalesce(jsonb_agg(l ORDER BY l.id), '[]') FROM fulfillment_order_lines l",
        "events": "SELECT count(*) FROM order_events",
        "outbox": "SELECT count(*) FROM outbox",
        "customers": "SELECT count(*) FROM customers",
        "stock": "SELECT coalesce(jsonb_agg(s ORDER BY s.location_id, s.product_id), '[]') FROM stock_levels s",
        "movements": "SELECT count(*) FROM inventory_movements",
        "reservations": "SELECT coalesce(jsonb_agg(r ORDER BY r.id), '[]') FROM reservations r",
    }
    async with db.unit_of_work() as uow:
        return {name: await uow.session.scalar(text(sql)) for name, sql in queries.items()}


@pytest.fixture
async def ready(db, clock) -> uuid.UUID:
    """A pickup at S1, ready for the customer (committed, as its handlers would)."""
    await add_location(db, "S1")
    await add_product(db, "A")
    await set_stock(db, "S1", "A", 5)
    order = await place(db, clock, [("A", 2)])
    fo = order["fulfillment_orders"][0]
    fo_id, line_id = uuid.UUID(fo["id"]), uuid.UUID(fo["lines"][0]["id"])
    for request in (Accept(), StartPicking(), Pick({line_id: 2}), MarkReady()):
        await act(db, clock, fo_id, request, LIFECYCLE)
    return fo_id


async def test_use_cases_run_without_committing_leave_the_database_as_they_found_it(db, clock, ready) -> None:
    order_id = await _order_of(db, ready)
    later = clock.now() + timedelta(days=30)
    use_cases = {
        "resend_pickup_code": lambda uow: resend_pickup_code(uow, ready, WEB, clock, LIFECYCLE),
        "record_arrival": lambda uow: record_arrival(uow, order_id, WEB, clock, "P7", "blue van"),
        "remind_if_due": lambda uow: pickup_timers.remind_if_due(uow, ready, clock, LIFECYCLE, timedelta(days=30)),
        "cancel_order": lambda uow: cancel_order(uow, order_id, WEB, clock, LIFECYCLE, reason="asked"),
    }
    before = await _state(db)
    for name, use_case in use_cases.items():
        assert await db.run(use_case), name  # each did its work, in a transaction it did not commit
        assert await _state(db) == before, f"{name} committed on its own"

    clock.advance(later - clock.now())
    assert await db.run(lambda uow: pickup_timers.expire_if_due(uow, ready, clock, LIFECYCLE)) is True
    assert await _state(db) == before, "expire_if_due committed on its own"


async def test_a_wrong_pickup_code_is_kept_only_by_committing(db, clock, ready) -> None:
    """The refusal keeps its writes (the failed attempt counts) through ``committing`` alone."""
    wrong = HandOver(code="000000")
    before = await _state(db)
    with pytest.raises(KeepWritesAndRaise):
        await db.run(lambda uow: transition(uow, ready, wrong, WEB, clock, LIFECYCLE))
    assert await _state(db) == before

    with pytest.raises(WrongPickupCode):
        await db.run(committing(lambda uow: transition(uow, ready, wrong, WEB, clock, LIFECYCLE)))
    async with db.unit_of_work() as uow:
        failed = await uow.session.scalar(
            text("SELECT pickup_failed_attempts FROM fulfillment_orders WHERE id = :id"), {"id": ready}
        )
    assert failed == 1


async def test_placing_an_order_without_committing_leaves_nothing_behind(db, clock) -> None:
    await add_location(db, "S1")
    await add_product(db, "A")
    await set_stock(db, "S1", "A", 5)
    before = await _state(db)
    cmd = order_command([("A", 2)], email="new@example.com")
    placed = await db.run(lambda uow: place_order(uow, cmd, WEB, clock, claim=None))
    assert placed.created
    assert await _state(db) == before


async def test_two_use_cases_share_one_transaction_both_stand_or_neither(db, clock) -> None:
    await add_location(db, "S1")
    await add_product(db, "A")
    await set_stock(db, "S1", "A", 5)

    async def place_and_accept(uow: UnitOfWork, expected_version: int | None = None) -> str:
        placed = await place_order(uow, order_command([("A", 2)]), WEB, clock, claim=None)
        fo_id = uuid.UUID(json.loads(placed.body)["fulfillment_orders"][0]["id"])
        view = await transition(uow, fo_id, Accept(), ADMIN, clock, LIFECYCLE, expected_version=expected_version)
        return view.status

    assert await db.run(committing(place_and_accept)) == "accepted"
    after_both = await _state(db)
    assert [f["status"] for f in after_both["fulfillments"]] == ["accepted"]
    assert after_both["stock"][0]["reserved"] == 2

    # The second use case refuses: the first one's order goes with it.
    with pytest.raises(VersionMismatch):
        await db.run(committing(lambda uow: place_and_accept(uow, expected_version=99)))
    assert await _state(db) == after_both


async def _order_of(db, fulfillment_id: uuid.UUID) -> uuid.UUID:
    async with db.unit_of_work() as uow:
        return await uow.session.scalar(
            text("SELECT order_id FROM fulfillment_orders WHERE id = :id"), {"id": fulfillment_id}
        )
