"""Migration 0003 (order totals): orders placed before it keep their money — nothing added, nothing
taken off, their total their subtotal — and the database refuses a discount above the order."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import asyncpg
import pytest
from alembic import command

from orchestrator.platform.embedded import create_database, drop_database
from tests.integration.test_migrations import _alembic_config

ORDER = """INSERT INTO orders (id, number, channel, channel_order_ref, customer_id, currency, subtotal,
    status, fulfillment_method, sourcing_profile_version, version, last_event_seq, created_at)
    VALUES ($1, $2, 'web', $2, $3, 'EUR', 2500, 'received', 'ship', 0, 1, 0, now())"""


@pytest.fixture
def database(servers: tuple[str, str]) -> Iterator[str]:
    name = f"orch_totals_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        yield create_database(servers[0], name)
    finally:
        drop_database(servers[0], name)


def run(url: str, *statements: tuple[str, ...]) -> list:
    async def go() -> list:
        conn = await asyncpg.connect(url)
        try:
            return [await conn.fetch(sql, *args) for sql, *args in statements]
        finally:
            await conn.close()

    return asyncio.run(go())


def test_an_order_from_before_the_totals_gets_zeros_and_the_check_guards_new_ones(database):
    config = _alembic_config(database)
    command.upgrade(config, "0002")
    customer, before = uuid.uuid4(), uuid.uuid4()
    run(database, ("INSERT INTO customers (id, email) VALUES ($1, 'ann@example.com')", customer))
    run(database, (ORDER, before, "OLD-0001", customer))

    command.upgrade(config, "0003")
    [rows] = run(database, ("SELECT shipping_total, tax_total, discount_total FROM orders WHERE id = $1", before))
    assert tuple(rows[0]) == (0, 0, 0)
    with pytest.raises(asyncpg.CheckViolationError):
        run(database, ("UPDATE orders SET shipping_total = 100, discount_total = 2601 WHERE id = $1", before))
    run(database, ("UPDATE orders SET shipping_total = 100, discount_total = 2600 WHERE id = $1", before))

    command.downgrade(config, "0002")
    [columns] = run(database, ("SELECT column_name FROM information_schema.columns WHERE table_name = 'orders'",))
    assert not {r[0] for r in columns} & {"shipping_total", "tax_total", "discount_total"}
