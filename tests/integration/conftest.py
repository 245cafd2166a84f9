"""Integration fixtures: the e2e app/client/shop fixtures (the real app over HTTP) are reused.

``db`` is narrowed here: the concurrency tests saturate their pool, and several xdist workers
share one PostgreSQL (``max_connections`` is often 100), so each worker keeps to 15 connections.
"""

from collections.abc import AsyncIterator

import pytest

from orchestrator.platform.db import Database
from tests.conftest import emptied
from tests.e2e.conftest import client, settings, shop  # noqa: F401  (pytest fixtures)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    async with emptied(database_url, pool_size=10, max_overflow=5) as database:
        yield database
