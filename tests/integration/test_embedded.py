"""The embedded default: `orchestrator dev` (and the tests, on a machine without servers) run on a
private PostgreSQL and Redis the project starts and stops itself."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from pathlib import Path

import asyncpg
import psutil
import redis

from orchestrator.migrate import upgrade_database
from orchestrator.platform.embedded import EmbeddedServices, port_open

ROOT = Path(__file__).resolve().parents[2]


def test_embedded_servers_start_serve_the_schema_and_stop_again() -> None:
    state = ROOT / ".orchestrator" / f"embedded-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    services = EmbeddedServices(state).start()
    try:
        assert services.database_url and services.redis_url
        upgrade_database(services.database_url)

        async def tables() -> set[str]:
            conn = await asyncpg.connect(services.database_url.replace("+asyncpg", ""))
            try:
                return {r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
            finally:
                await conn.close()

        assert {"orders", "stock_levels", "outbox"} <= asyncio.run(tables())
        client = redis.Redis.from_url(services.redis_url)
        assert client.ping()
        client.close()
        port = int(services.redis_url.rsplit(":", 1)[1].split("/")[0])
        postmaster = int((state / "pgdata" / "postmaster.pid").read_text().split()[0])
    finally:
        services.stop()
    assert not port_open("127.0.0.1", port)
    assert not psutil.pid_exists(postmaster) or psutil.Process(postmaster).status() == psutil.STATUS_ZOMBIE
    shutil.rmtree(state, ignore_errors=True)
