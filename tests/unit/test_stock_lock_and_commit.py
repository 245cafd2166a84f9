"""Stock rows are locked in one place only (``lock_stock``, canonical order), and ``committing``
commits a unit of work only when the use case it wraps returned. (That models import no database
or framework is an import-linter contract in pyproject.toml, checked by test_shape.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.platform.db import committing

ROOT = Path(__file__).resolve().parents[2]


def test_only_lock_stock_writes_for_update_on_stock_rows() -> None:
    lockers = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "orchestrator").rglob("*.py")
        if "stock_levels" in (source := path.read_text()) and "FOR UPDATE" in source.upper()
    )
    assert lockers == ["orchestrator/inventory/stock_sql.py"]


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
