"""Synchronising a test with PostgreSQL's lock queue, by backend pid: a test holds a row or a
transaction open, starts the work it races against, and waits until that work's backend queues
behind the holder's pid — never a sleep, never "some backend somewhere waits"."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.platform.db import Database


async def backend_pid(session: AsyncSession) -> int:
    return int(await session.scalar(text("SELECT pg_backend_pid()")))


async def waiting_for_lock(db: Database, pid: int) -> bool:
    """``pid`` has a lock request PostgreSQL has not granted yet."""
    async with db.unit_of_work() as uow:
        return bool(
            await uow.session.scalar(
                text("SELECT count(*) FROM pg_locks WHERE pid = :pid AND NOT granted"), {"pid": pid}
            )
        )


async def until_waiting(db: Database, pid: int, polls: int = 1000) -> None:
    """Return once backend ``pid`` waits for a lock (polled every 10 ms), else fail the test."""
    for _ in range(polls):
        if await waiting_for_lock(db, pid):
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"backend {pid} never queued for a lock")


async def queued_behind(db: Database, holder_pid: int, work: asyncio.Task, within: float = 10.0) -> int:
    """The pid of the backend that ``work`` uses, once it waits for a lock ``holder_pid`` holds.
    Fails the test if ``work`` finishes first or never queues."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        if work.done():
            pytest.fail(f"the work finished without queueing behind backend {holder_pid}: {work.result()!r}")
        async with db.unit_of_work() as uow:
            waiter = await uow.session.scalar(
                text(
                    "SELECT a.pid FROM pg_stat_activity a WHERE :holder = ANY(pg_blocking_pids(a.pid)) "
                    "AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted)"
                ),
                {"holder": holder_pid},
            )
        if waiter is not None:
            return int(waiter)
        await asyncio.sleep(0.01)  # poll the fact again; the work may not have reached the row yet
    pytest.fail(f"nothing queued behind backend {holder_pid} within {within}s")


async def holds_advisory_lock(db: Database, pid: int) -> bool:
    async with db.unit_of_work() as uow:
        return bool(
            await uow.session.scalar(
                text("SELECT count(*) FROM pg_locks WHERE pid = :pid AND locktype = 'advisory' AND granted"),
                {"pid": pid},
            )
        )


def record_retries(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SQLSTATE of every error ``Database.run`` decides to retry (40P01 deadlock, 40001
    serialization failure), in order. A client never sees a deadlock ``db.run`` retried, so a test
    of the lock order must look here: a retried deadlock is still a deadlock (and a second's stall)."""
    from orchestrator.platform import db as engine

    seen: list[str] = []
    real = engine.is_retryable

    def recording(exc: BaseException) -> bool:
        retryable = real(exc)
        if retryable:
            seen.append(engine.sqlstate(exc) or "?")
        return retryable

    monkeypatch.setattr(engine, "is_retryable", recording)
    return seen
