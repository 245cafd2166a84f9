"""Stock rows are locked in one place only (``lock_stock``, canonical order); ``committing``
commits a unit of work only when the use case it wraps returned (or refused keeping its writes);
``Database.run`` runs again a use case that read numbers another transaction moved. (That models
import no database or framework is an import-linter contract in pyproject.toml, checked by
test_shape.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.orders.intake import DuplicateOrder
from orchestrator.platform.db import Database, KeepWritesAndRaise, RetryOnFreshRead, UnitOfWork, committing
from orchestrator.platform.errors import InsufficientStock, Shortfall, WrongPickupCode
from orchestrator.sourcing.profiles import ProfileVersionTaken
from orchestrator.sourcing.reservation import StockMoved

ROOT = Path(__file__).resolve().parents[2]


def test_only_lock_stock_writes_for_update_on_stock_rows() -> None:
    lockers = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "orchestrator").rglob("*.py")
        if "stock_levels" in (source := path.read_text()) and "FOR UPDATE" in source.upper()
    )
    assert lockers == ["orchestrator/inventory/stock_sql.py"]


def test_no_use_case_commits_only_committing_and_the_relay_do() -> None:
    """Use cases never commit (the entry point's ``committing`` does); the outbox relay is
    infrastructure with short transactions of its own."""
    committers = sorted(
        str(path.relative_to(ROOT)) for path in (ROOT / "orchestrator").rglob("*.py") if ".commit()" in path.read_text()
    )
    assert committers == ["orchestrator/platform/db.py", "orchestrator/platform/outbox_relay.py"]


class _RecordingUnitOfWork:
    def __init__(self) -> None:
        self.commits = 0

    async def commit(self) -> None:
        self.commits += 1


async def test_committing_commits_once_after_the_use_case_returns() -> None:
    uow = _RecordingUnitOfWork()

    async def use_case(u: _RecordingUnitOfWork) -> str:
        assert u.commits == 0  # not before the use case is done
        return "done"

    assert await committing(use_case)(uow) == "done"  # type: ignore[arg-type]
    assert uow.commits == 1


async def test_committing_does_not_commit_when_the_use_case_raises() -> None:
    uow = _RecordingUnitOfWork()

    async def use_case(u: _RecordingUnitOfWork) -> None:
        raise LookupError("no such thing")

    with pytest.raises(LookupError):
        await committing(use_case)(uow)  # type: ignore[arg-type]
    assert uow.commits == 0


async def test_committing_keeps_the_writes_of_a_refusal_then_raises_its_error() -> None:
    uow = _RecordingUnitOfWork()
    wrong_code = WrongPickupCode("wrong pickup code")

    async def use_case(u: _RecordingUnitOfWork) -> None:
        raise KeepWritesAndRaise(wrong_code)

    with pytest.raises(WrongPickupCode) as raised:
        await committing(use_case)(uow)  # type: ignore[arg-type]
    assert raised.value is wrong_code
    assert uow.commits == 1


# ``Database`` connects lazily: use cases that never touch the session run without a server.
def _database() -> Database:
    return Database("postgresql://nobody@127.0.0.1:1/nothing")


class _Raced(RetryOnFreshRead):
    pass


async def test_run_runs_again_a_use_case_whose_read_another_transaction_moved() -> None:
    calls = 0

    async def use_case(uow: UnitOfWork) -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise _Raced()
        return "done"

    db = _database()
    assert await db.run(use_case) == "done"
    assert calls == 3
    await db.dispose()


async def test_run_gives_up_on_fresh_reads_after_its_attempts_and_never_retries_other_errors() -> None:
    calls: list[str] = []

    async def racing(uow: UnitOfWork) -> None:
        calls.append("raced")
        raise _Raced()

    async def failing(uow: UnitOfWork) -> None:
        calls.append("failed")
        raise LookupError("no such thing")

    db = _database()
    with pytest.raises(_Raced):
        await db.run(racing, attempts=3)
    with pytest.raises(LookupError):
        await db.run(failing)
    assert calls == ["raced"] * 3 + ["failed"]
    await db.dispose()


async def test_stock_that_moved_under_every_attempt_is_reported_short_by_the_last_attempt() -> None:
    short = [Shortfall("SKU-1", requested=3, available=1)]

    async def racing(uow: UnitOfWork) -> None:
        raise StockMoved(short)

    db = _database()
    for attempts in (1, 3):
        with pytest.raises(InsufficientStock) as raised:
            await db.run(racing, attempts=attempts)
        assert raised.value.shortfalls == short
    await db.dispose()


def test_the_races_use_cases_detect_are_retried_on_fresh_reads() -> None:
    assert issubclass(StockMoved, RetryOnFreshRead)
    assert issubclass(DuplicateOrder, RetryOnFreshRead)
    assert issubclass(ProfileVersionTaken, RetryOnFreshRead)


async def test_a_refusal_keeping_its_writes_is_rolled_back_without_committing(monkeypatch) -> None:
    commits = 0

    async def counting_commit(self: UnitOfWork) -> None:
        nonlocal commits
        commits += 1

    monkeypatch.setattr(UnitOfWork, "commit", counting_commit)

    async def refusing(uow: UnitOfWork) -> None:
        raise KeepWritesAndRaise(WrongPickupCode("wrong pickup code"))

    db = _database()
    with pytest.raises(KeepWritesAndRaise):
        await db.run(refusing)
    assert commits == 0
    with pytest.raises(WrongPickupCode):
        await db.run(committing(refusing))
    assert commits == 1
    await db.dispose()
