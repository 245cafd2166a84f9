"""Issue #7 item 4: the API against a database that is stopped or hung, and a Redis that is gone.

A PostgreSQL of the test's own (embedded) is stopped, or frozen with SIGSTOP (postmaster and
every backend: connections are accepted by the kernel and never answered); the machine's servers
are never touched. Requests must fail fast as the 503 problem with Retry-After, logged once per
incident, and readiness must answer within ~2 s whatever the database does.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from orchestrator.app import create_app
from orchestrator.migrate import upgrade_database
from orchestrator.platform import observability, problems
from orchestrator.platform.actors import Role
from orchestrator.platform.api_keys import create_key
from orchestrator.platform.db import Database, database_unavailable
from orchestrator.platform.embedded import EmbeddedPostgres, free_port
from tests.e2e.conftest import ADMIN_TOKEN, auth, serving, settings_for
from tests.e2e.support import Recorder

ROOT = Path(__file__).resolve().parents[2]
CLIENT_TIMEOUT_S = 10.0
UNAVAILABLE = "https://orchestrator.example/problems/unavailable"


@dataclass
class PrivatePostgres:
    server: EmbeddedPostgres
    url: str

    @property
    def pgdata(self) -> Path:
        return self.server.pgdata

    async def stop(self) -> None:
        await asyncio.to_thread(self.server.stop)

    async def start(self) -> None:
        # In a thread: starting runs an event loop of its own.
        self.url = await asyncio.to_thread(self.server.start)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL of this module's own, migrated; each test leaves it running."""
    state = ROOT / ".orchestrator" / f"outage-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    server = EmbeddedPostgres(state)
    private = PrivatePostgres(server, server.start())
    upgrade_database(private.url)
    try:
        yield private
    finally:
        server.stop()
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(problems, "log", recorder)
    return recorder


@asynccontextmanager
async def app_client(database_url: str, redis_url: str, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(settings_for(database_url, redis_url, **overrides))) as client:
        yield client


async def timed(request) -> tuple[httpx.Response, float]:  # type: ignore[no-untyped-def]
    """The response and how long it took, or a failure once the client would have given up."""
    started = time.monotonic()
    async with asyncio.timeout(CLIENT_TIMEOUT_S):
        response = await request
    return response, time.monotonic() - started


async def orders_at_once(client: httpx.AsyncClient, n: int) -> list[tuple[httpx.Response, float]]:
    """``n`` concurrent ``GET /v1/orders`` as the admin, each timed."""
    return await asyncio.gather(*(timed(client.get("/v1/orders", headers=auth(ADMIN_TOKEN))) for _ in range(n)))


def assert_unavailable(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"] == UNAVAILABLE
    assert int(r.headers["retry-after"]) > 0


async def channel_key(database_url: str) -> dict[str, str]:
    db = Database(database_url)
    try:
        async with db.unit_of_work() as uow:
            token, _ = await create_key(
                uow, role=Role.CHANNEL, name=f"web-{uuid.uuid4().hex[:6]}", channel="web", now=datetime.now(UTC)
            )
            await uow.commit()
    finally:
        await db.dispose()
    return auth(token)


@contextmanager
def frozen(postgres: PrivatePostgres) -> Iterator[None]:
    """The postmaster and every backend stopped (SIGSTOP) until the block ends, then resumed."""
    postmaster = psutil.Process(int((postgres.pgdata / "postmaster.pid").read_text().split()[0]))
    processes = [postmaster, *postmaster.children(recursive=True)]
    for p in processes:
        p.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        for p in processes:
            p.send_signal(signal.SIGCONT)


async def test_a_stopped_database_is_a_503_problem_with_retry_after_logged_once(postgres, redis_url, logged):
    channel = await channel_key(postgres.url)
    async with app_client(postgres.url, redis_url) as client:
        assert (await client.get("/v1/orders", headers=auth(ADMIN_TOKEN))).status_code == 200
        await postgres.stop()
        try:
            for _ in range(5):
                r, _elapsed = await timed(client.get("/v1/orders", headers=auth(ADMIN_TOKEN)))
                assert_unavailable(r)
                # The key lookup in the middleware meets the outage first.
                r, _elapsed = await timed(client.get("/v1/orders", headers=channel))
                assert_unavailable(r)
            ready, elapsed = await timed(client.get("/health/ready"))
            assert ready.status_code == 503 and ready.json()["database"].startswith("down")
            assert elapsed < 2.0
        finally:
            await postgres.start()
    levels = [(level, event) for level, event, _ in logged.calls]
    assert levels == [("error", "database unavailable")], logged.calls
    assert "exc_info" not in logged.calls[0][2]


def requests_counted(metrics: str, path: str, status: int) -> float:
    """The request counter of ``path`` and ``status`` in a Prometheus text exposition."""
    total = 0.0
    for line in metrics.splitlines():
        labels = (f'path="{path}"', f'status_code="{status}"')
        if line.startswith("orchestrator_requests_total{") and all(label in line for label in labels):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_an_outage_met_by_the_key_lookup_is_logged_and_counted_as_503(postgres, redis_url, monkeypatch):
    access = Recorder()
    monkeypatch.setattr(observability, "access_log", access)
    channel = await channel_key(postgres.url)
    settings = settings_for(postgres.url, redis_url).model_copy(update={"access_log": True})
    async with serving(create_app(settings)) as client:
        before = (await client.get("/metrics")).text
        await postgres.stop()
        try:
            # A non-admin key with a cold cache (key_cache_seconds=0): the middleware's lookup fails.
            r, _ = await timed(client.get("/v1/orders", headers=channel))
            assert_unavailable(r)
        finally:
            await postgres.start()
        after = (await client.get("/metrics")).text
    logged = [kw for _, event, kw in access.calls if event == "request" and kw["path"] == "/v1/orders"]
    assert [kw["status"] for kw in logged] == [503], access.calls
    assert requests_counted(after, "/v1/orders", 503) - requests_counted(before, "/v1/orders", 503) == 1
    assert requests_counted(after, "/v1/orders", 200) == requests_counted(before, "/v1/orders", 200)


async def test_a_hung_database_answers_503_within_seconds_and_readiness_within_2s(postgres, redis_url):
    async with app_client(postgres.url, redis_url) as client:
        # A pooled connection (its statement will hang) and room for new ones (their connect will).
        assert (await client.get("/v1/orders", headers=auth(ADMIN_TOKEN))).status_code == 200
        with frozen(postgres):
            results = await orders_at_once(client, 3)
            for r, elapsed in results:
                assert_unavailable(r)
                assert elapsed < CLIENT_TIMEOUT_S
            ready, elapsed = await timed(client.get("/health/ready"))
            assert ready.status_code == 503, ready.text
            assert ready.json()["database"].startswith("down")
            assert elapsed < 2.0, elapsed
        # Thawed, the same app serves again: dead connections were dropped, not reused.
        r, _ = await timed(client.get("/v1/orders", headers=auth(ADMIN_TOKEN)))
        assert r.status_code == 200, r.text
        ready, _ = await timed(client.get("/health/ready"))
        assert ready.status_code == 200, ready.text


async def test_a_request_waiting_for_a_pooled_connection_gives_up_at_the_pool_timeout(postgres, redis_url):
    """One connection, held by a statement the hung server never answers: the requests queued
    behind it get their 503 at the pool timeout, not one statement timeout after another."""
    async with app_client(postgres.url, redis_url, db_pool_size=1, db_max_overflow=0) as client:
        assert (await client.get("/v1/orders", headers=auth(ADMIN_TOKEN))).status_code == 200
        with frozen(postgres):
            results = await orders_at_once(client, 4)
    for r, elapsed in results:
        assert_unavailable(r)
        assert elapsed < CLIENT_TIMEOUT_S


async def test_the_api_database_bounds_a_statement_on_the_server(database_url):
    db = Database(database_url, statement_timeout_ms=200)
    try:
        async with db.unit_of_work() as uow:
            assert (await uow.session.execute(text("SHOW statement_timeout"))).scalar_one() == "200ms"
        started = time.monotonic()
        with pytest.raises(DBAPIError) as raised:
            async with db.unit_of_work() as uow:
                await uow.session.execute(text("SELECT pg_sleep(5)"))
        assert time.monotonic() - started < 1.0
        assert database_unavailable(raised.value)
    finally:
        await db.dispose()


async def test_redis_down_leaves_the_api_ready_and_says_so(database_url):
    closed = f"redis://127.0.0.1:{free_port()}/0"
    async with app_client(database_url, closed) as client:
        ready, elapsed = await timed(client.get("/health/ready"))
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["redis"].startswith("down")
    assert elapsed < 2.0
