"""Test harness: real PostgreSQL and Redis.

Servers, in order of preference: ORCHESTRATOR_TEST_DATABASE_URL / ORCHESTRATOR_TEST_REDIS_URL;
the machine's 127.0.0.1:5432 and 127.0.0.1:6379; else the project's embedded
ones. Each test session (each xdist worker) gets its own database, built by the alembic
migrations (never ``create_all``), and every test starts from empty tables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from orchestrator.metadata import metadata
from orchestrator.migrate import upgrade_database
from orchestrator.platform.db import Database
from orchestrator.platform.embedded import create_database, drop_database, local_servers

ROOT = Path(__file__).resolve().parent.parent
# The Stripe-shaped server and a gateway pointed at it (fixtures: stripe_server, stripe_api, stripe_test_gateway).
pytest_plugins = ["tests.stripe_server.fixtures"]
# Every table the service has (a table added later is emptied too, without touching this list).
TABLES = [t.name for t in metadata.sorted_tables]


@pytest.fixture(scope="session")
def servers() -> Iterator[tuple[str, str]]:
    """(admin postgres URL, redis URL) of running servers; embedded ones are started if needed."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with local_servers(
        ROOT / ".orchestrator" / f"test-{worker}",
        database_url=os.environ.get("ORCHESTRATOR_TEST_DATABASE_URL"),
        redis_url=os.environ.get("ORCHESTRATOR_TEST_REDIS_URL"),
    ) as urls:
        yield urls


@pytest.fixture(scope="session")
def database_url(servers: tuple[str, str]) -> Iterator[str]:
    """A fresh database for this session, migrated to head."""
    name = f"orch_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = create_database(servers[0], name)
    upgrade_database(url)
    yield url
    drop_database(servers[0], name)


@pytest.fixture(scope="session")
def redis_url(servers: tuple[str, str]) -> str:
    return servers[1]


@asynccontextmanager
async def emptied(database_url: str, *, pool_size: int, max_overflow: int) -> AsyncIterator[Database]:
    """The session's database with every table emptied, and a connection pool of this size."""
    database = Database(database_url, pool_size=pool_size, max_overflow=max_overflow)
    async with database.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    async with emptied(database_url, pool_size=20, max_overflow=20) as database:
        yield database


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def clock():
    """Starts at the real time now, so what a test does by it agrees with the clocks it cannot
    move (arq's, Redis's TTLs, PostgreSQL's now()); moving it forward simulates the future."""
    from orchestrator.platform.clock import ManualClock

    return ManualClock(datetime.now(UTC))
