"""Shared by the benchmarks: a database to run against, a server to drive, percentiles."""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.cli import upgrade_database  # noqa: E402
from orchestrator.embedded import EmbeddedServices, free_port  # noqa: E402


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def bench_servers(name: str) -> Iterator[tuple[str, str]]:
    """(database URL, redis URL): a fresh database ``name`` on the machine's PostgreSQL (or the
    embedded one), migrated to head."""
    pg = os.environ.get("ORCHESTRATOR_BENCH_DATABASE_URL")
    rd = os.environ.get("ORCHESTRATOR_BENCH_REDIS_URL")
    if pg is None and reachable("127.0.0.1", 5432):
        pg = "postgresql://postgres@127.0.0.1:5432/postgres"
    if rd is None and reachable("127.0.0.1", 6379):
        rd = "redis://127.0.0.1:6379/0"
    embedded = None
    if pg is None or rd is None:
        embedded = EmbeddedServices(ROOT / ".orchestrator" / "bench", postgres=pg is None, redis=rd is None).start()
        pg = pg or (embedded.database_url or "").replace("/orchestrator?", "/postgres?")
        rd = rd or embedded.redis_url
    admin = pg.replace("postgresql+asyncpg://", "postgresql://")

    async def recreate() -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(recreate())
    head, _, query = admin.partition("?")
    url = head.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")
    upgrade_database(url)
    try:
        yield url, rd or ""
    finally:
        if embedded is not None:
            embedded.stop()


class Server:
    """A running ``orchestrator serve``: its base URL and the CPU its processes have used."""

    def __init__(self, base: str, pid: int) -> None:
        self.base = base
        self.pid = pid

    def cpu_seconds(self) -> float:
        import psutil

        root = psutil.Process(self.pid)
        total = 0.0
        for p in [root, *root.children(recursive=True)]:
            t = p.cpu_times()
            total += t.user + t.system
        return total


@contextmanager
def running_server(database_url: str, redis_url: str, admin_token: str, workers: int = 1) -> Iterator[Server]:
    """``orchestrator serve`` in a subprocess, as deployed."""
    port = free_port()
    env = {**os.environ, "ORCHESTRATOR_DATABASE_URL": database_url, "ORCHESTRATOR_REDIS_URL": redis_url,
           "ORCHESTRATOR_ADMIN_TOKEN": admin_token, "ORCHESTRATOR_ACCESS_LOG": "false",
           "ORCHESTRATOR_LOG_LEVEL": "WARNING", "ORCHESTRATOR_WORKERS": str(workers)}
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "serve", "--port", str(port)],
                            env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not reachable("127.0.0.1", port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.1)
    try:
        yield Server(base, proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)


def percentile(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=1000, method="inclusive")[int(q * 1000) - 1]
