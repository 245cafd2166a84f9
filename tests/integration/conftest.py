"""Integration fixtures: the e2e app/client/shop fixtures (the real app over HTTP) are reused.

``db`` is narrowed here: the concurrency tests saturate their pool, and several xdist workers
share one PostgreSQL (``max_connections`` is often 100), so each worker keeps to 15 connections.
"""

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from orchestrator.db.engine import Database
from tests.conftest import TABLES
from tests.e2e.conftest import client, settings, shop  # noqa: F401  (pytest fixtures)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, pool_size=10, max_overflow=5)
    async with database.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    yield database
    await database.dispose()
