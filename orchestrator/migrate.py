"""Bring a database to the schema at head: alembic's migrations, run from the project's files
whatever the working directory. Used by ``orchestrator db upgrade``, ``orchestrator dev`` and the
tests, which build every database this way (never with ``create_all``)."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def upgrade_database(url: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.attributes["database_url"] = url
    command.upgrade(config, "head")
