"""Test harness: real PostgreSQL and Redis.

Servers, in order of preference: ORCHESTRATOR_TEST_DATABASE_URL / ORCHESTRATOR_TEST_REDIS_URL;
the machine's 127.0.0.1:5432 (database ``test``) and 127.0.0.1:6379; else the project's embedded
ones. Each test session (each xdist worker) gets its own database, built by the alembic
migrations (never ``create_all``), and every test starts from empty tables.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from orchestrator.db.engine import Database

ROOT = Path(__file__).resolve().parent.parent
TABLES = [
    "inventory_movements", "reservations", "fulfillment_order_lines", "fulfillment_orders", "order_events",
    "sourcing_decisions", "order_lines", "orders", "customers", "stock_levels", "products", "locations",
    "outbox", "idempotency_keys", "api_keys", "sourcing_profiles",
]


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(admin postgres URL, redis URL) of running servers; embedded ones are started if needed."""
    pg = os.environ.get("ORCHESTRATOR_TEST_DATABASE_URL")
    rd = os.environ.get("ORCHESTRATOR_TEST_REDIS_URL")
    if pg is None and _reachable("127.0.0.1", 5432):
        pg = "postgresql://postgres@127.0.0.1:5432/postgres"
    if rd is None and _reachable("127.0.0.1", 6379):
        rd = "redis://127.0.0.1:6379/0"
    embedded = None
    if pg is None or rd is None:
        from orchestrator.embedded import EmbeddedServices

        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        embedded = EmbeddedServices(ROOT / ".orchestrator" / f"test-{worker}", postgres=pg is None, redis=rd is None)
        embedded.start()
        pg = pg or embedded.database_url
        rd = rd or embedded.redis_url
    assert pg and rd
    yield pg.replace("postgresql+asyncpg://", "postgresql://"), rd
    if embedded is not None:
        embedded.stop()


@pytest.fixture(scope="session")
def database_url(servers: tuple[str, str]) -> Iterator[str]:
    """A fresh database for this session, migrated to head."""
    admin_url = servers[0]
    name = f"orch_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = _with_database(admin_url, name)
    from orchestrator.cli import upgrade_database

    upgrade_database(url)
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _with_database(url: str, name: str) -> str:
    """Swap the database name in a postgres URL (TCP or ``?host=`` socket form)."""
    head, _, query = url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{name}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def redis_url(servers: tuple[str, str]) -> str:
    return servers[1]


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, pool_size=20, max_overflow=20)
    async with database.engine.begin() as conn:
        from sqlalchemy import text

        await conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    yield database
    await database.dispose()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def clock():
    from orchestrator.services.clock import ManualClock

    return ManualClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
