"""Sourcing's engine and model, and the stock model, are pure: nothing from the database, HTTP
or the framework, so the engine's tests need none of them. Stock rows are locked in one place
only (``lock_stock``, canonical order). And ``committing`` commits a unit of work only when the
use case it wraps returned."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from orchestrator.platform.db import committing

ROOT = Path(__file__).resolve().parents[2]
PURE = [
    "orchestrator/sourcing/model.py",
    "orchestrator/sourcing/engine.py",
    "orchestrator/sourcing/scoring.py",
    "orchestrator/inventory/model.py",
    "orchestrator/platform/geo.py",
]
FORBIDDEN = {"sqlalchemy", "sqlmodel", "asyncpg", "litestar", "redis", "arq"}


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("module", PURE)
def test_the_pure_modules_import_no_database_http_or_framework(module: str) -> None:
    assert not _imported_roots(ROOT / module) & FORBIDDEN


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
