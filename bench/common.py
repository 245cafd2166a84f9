"""Shared by the benchmarks: a database to run against, a server to drive, percentiles."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.migrate import upgrade_database  # noqa: E402
from orchestrator.platform.embedded import create_database, free_port, local_servers, port_open  # noqa: E402


@contextmanager
def bench_servers(name: str) -> Iterator[tuple[str, str]]:
    """(database URL, redis URL): a fresh database ``name`` on the machine's PostgreSQL (or the
    embedded one), migrated to head."""
    with local_servers(
        ROOT / ".orchestrator" / "bench",
        database_url=os.environ.get("ORCHESTRATOR_BENCH_DATABASE_URL"),
        redis_url=os.environ.get("ORCHESTRATOR_BENCH_REDIS_URL"),
    ) as (admin, redis):
        url = create_database(admin, name)
        upgrade_database(url)
        yield url, redis


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
    env = {
        **os.environ,
        "ORCHESTRATOR_DATABASE_URL": database_url,
        "ORCHESTRATOR_REDIS_URL": redis_url,
        "ORCHESTRATOR_ADMIN_TOKEN": admin_token,
        "ORCHESTRATOR_ACCESS_LOG": "false",
        "ORCHESTRATOR_LOG_LEVEL": "WARNING",
        "ORCHESTRATOR_WORKERS": str(workers),
    }
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "serve", "--port", str(port)], env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not port_open("127.0.0.1", port):
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


def calibration_ms() -> float:
    """Milliseconds for a fixed pure-Python workload, best of five: this VM's speed drifts by
    2x over minutes, so every result is printed next to how fast the machine was at the time."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        sum(i * i for i in range(1_000_000))
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)
