"""Findings of a correctness review, against the real database: each test names the rule it
checks and failed before the fix beside it."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

from sqlalchemy import text

from orchestrator.orders.commands import CustomerDetails
from orchestrator.orders.intake import place_order
from orchestrator.platform.db import committing
from tests.integration.invariants import all_violations
from tests.integration.lock_waits import backend_pid, queued_behind
from tests.integration.world import NOW, WEB, add_location, add_product, order_command, set_stock


async def test_a_phone_claimed_by_a_racing_first_order_does_not_fail_intake_with_a_unique_violation(db, clock):
    """Ann exists with an email and no phone. Her order brings her phone; at the same moment a
    first order of someone else (another email) carrying that same phone creates a customer.
    Intake's fill-in of Ann's phone then meets the other customer's row on the unique phone
    index: the placement must be retried (and attach to Ann without the phone), not fail."""
    await add_location(db, "S1")
    await add_product(db, "A")
    await set_stock(db, "S1", "A", 5)
    async with db.unit_of_work() as uow:
        await uow.session.execute(
            text("INSERT INTO customers (id, email, created_at) VALUES (:id, 'ann@example.com', :now)"),
            {"id": uuid.uuid4(), "now": NOW},
        )
        await uow.commit()

    phone = "+14155550100"
    async with db.unit_of_work() as other:
        # The other person's first order, still in its transaction: its customer row holds the phone.
        await other.session.execute(
            text("INSERT INTO customers (id, email, phone, created_at) VALUES (:id, 'bob@example.com', :p, :now)"),
            {"id": uuid.uuid4(), "p": phone, "now": NOW},
        )
        cmd = dataclasses.replace(
            order_command([("A", 1)]), customer=CustomerDetails(email="ann@example.com", phone=phone, name="Ann")
        )
        # Wait until the placement queues behind the other transaction's row on the phone index.
        placing = asyncio.create_task(db.run(committing(lambda uow: place_order(uow, cmd, WEB, clock, claim=None))))
        await queued_behind(db, await backend_pid(other.session), placing)
        await other.commit()
    placement = await placing
    assert placement.created and not placement.replayed  # a new order: 201
    async with db.unit_of_work() as uow:
        owner = await uow.session.scalar(
            text("SELECT c.email FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.id = :o"),
            {"o": placement.order_id},
        )
    assert owner == "ann@example.com"
    assert await all_violations(db) == []


async def test_a_rejection_that_resources_elsewhere_locks_stock_rows_in_one_canonical_order(db, clock, monkeypatch):
    """``lock_stock`` promises one canonical (location, product) order for every transaction.
    A rejection at S1 re-sourced to S2 locked S2's row (the new reservation) and only then S1's
    (the release): against an intake locking S1 then S2 that is a deadlock, resolved only by
    PostgreSQL's detector (a second's stall and a retry). A row first locked by a transaction
    must come after every row it already holds."""
    import orchestrator.fulfillment.stock_moves as stock_moves_module
    import orchestrator.sourcing.reservation as sourcing_module
    from orchestrator.fulfillment.requests import Reject
    from orchestrator.fulfillment.service import LifecycleSettings, transition
    from orchestrator.inventory import stock_sql as stock_module
    from tests.integration.world import ADMIN, place

    s1 = await add_location(db, "S1", 52.52, 13.40)
    s2 = await add_location(db, "S2", 52.40, 13.05)
    assert s1 < s2
    await add_product(db, "A")
    await set_stock(db, "S1", "A", 5)
    await set_stock(db, "S2", "A", 5)
    order = await place(db, clock, [("A", 2)], method="ship", destination=(52.52, 13.40))
    (fo,) = order["fulfillment_orders"]
    assert fo["location"] == "S1"

    held: list[tuple[int, int]] = []
    out_of_order: list[tuple[tuple[int, int], list[tuple[int, int]]]] = []
    real = stock_module.lock_stock

    async def recording(session, keys):
        keys = list(keys)
        for key in sorted(set(keys)):
            if key not in held:
                if held and key < max(held):
                    out_of_order.append((key, list(held)))
                held.append(key)
        return await real(session, keys)

    monkeypatch.setattr(sourcing_module, "lock_stock", recording)
    monkeypatch.setattr(stock_moves_module, "lock_stock", recording)
    reject = Reject("closed")
    await db.run(
        committing(
            lambda uow: transition(uow, uuid.UUID(fo["id"]), reject, ADMIN, clock, LifecycleSettings(secret="s"))
        )
    )
    async with db.unit_of_work() as uow:
        moved = await uow.session.scalar(
            text("SELECT count(*) FROM fulfillment_orders WHERE location_id = :l AND status = 'pending'"), {"l": s2}
        )
    assert moved == 1
    assert out_of_order == []
    assert await all_violations(db) == []
