"""The alembic migrations, on a database of their own: they build exactly the schema the models
describe (no drift), and they go down to nothing and back up again.

Sync tests on purpose: alembic's env runs its own event loop (``asyncio.run``).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import CheckConstraint
from sqlalchemy.ext.asyncio import create_async_engine

from orchestrator.metadata import metadata
from orchestrator.migrate import PROJECT_ROOT, upgrade_database
from orchestrator.platform.db import asyncpg_url
from orchestrator.platform.embedded import create_database, drop_database


def _alembic_config(url: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.attributes["database_url"] = url
    return config


@pytest.fixture
def empty_database(servers: tuple[str, str]) -> Iterator[str]:
    """A brand-new, empty database on the test server, dropped afterwards."""
    name = f"orch_migr_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        yield create_database(servers[0], name)
    finally:
        drop_database(servers[0], name)


def _inspect(url: str) -> dict[str, Any]:
    """Autogenerate's differences against the models, plus what autogenerate does not compare:
    CHECK constraints, partial-index predicates, the tables present."""

    def read(sync_conn) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return {"diff": compare_metadata(context, metadata)}

    async def run() -> dict[str, Any]:
        engine = create_async_engine(asyncpg_url(url))
        try:
            async with engine.connect() as conn:
                found = await conn.run_sync(read)
                checks = await conn.exec_driver_sql(
                    "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
                    "JOIN pg_namespace n ON n.oid = c.connamespace WHERE c.contype = 'c' AND n.nspname = 'public'"
                )
                found["checks"] = {(t, n): d for t, n, d in checks}
                partial = await conn.exec_driver_sql(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND indexdef LIKE '%WHERE%'"
                )
                found["partial"] = {n: d for n, d in partial}
                tables = await conn.exec_driver_sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                found["tables"] = {t for (t,) in tables}
                return found
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _model_checks() -> set[tuple[str, str]]:
    return {(t.name, c.name) for t in metadata.tables.values() for c in t.constraints if isinstance(c, CheckConstraint)}


def _model_partial_indexes() -> set[str]:
    return {
        i.name
        for t in metadata.tables.values()
        for i in t.indexes
        if i.dialect_options["postgresql"].get("where") is not None
    }


def _assert_matches_models(url: str) -> None:
    found = _inspect(url)
    assert found["diff"] == [], "the migrations and the models disagree (run alembic revision --autogenerate)"
    assert set(found["checks"]) == _model_checks()
    assert "reserved <= on_hand" in found["checks"][("stock_levels", "reserved_within_on_hand")]
    assert set(found["partial"]) == _model_partial_indexes()
    assert found["tables"] == set(metadata.tables) | {"alembic_version"}


def test_the_migrations_have_a_single_head():
    heads = ScriptDirectory.from_config(_alembic_config("postgresql://unused/none")).get_heads()
    assert len(heads) == 1, heads


def test_upgrade_head_on_an_empty_database_builds_exactly_the_models_schema(empty_database):
    upgrade_database(empty_database)
    _assert_matches_models(empty_database)


def test_downgrade_to_base_removes_everything_and_upgrading_again_rebuilds_it(empty_database):
    config = _alembic_config(empty_database)
    upgrade_database(empty_database)
    command.downgrade(config, "base")
    found = _inspect(empty_database)
    assert found["tables"] == {"alembic_version"}
    assert found["checks"] == {} and found["partial"] == {}

    async def leftovers() -> list[str]:
        conn = await asyncpg.connect(empty_database)
        try:
            rows = await conn.fetch(
                "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname = 'public' UNION ALL SELECT t.typname FROM pg_type t "
                "JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'public' AND t.typtype = 'e'"
            )
            return [r[0] for r in rows]
        finally:
            await conn.close()

    assert asyncio.run(leftovers()) == [], "functions or enum types left behind by the downgrade"
    upgrade_database(empty_database)
    _assert_matches_models(empty_database)
