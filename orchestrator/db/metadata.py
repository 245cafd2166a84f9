"""Every table, imported once, so alembic and the drift test see one complete MetaData."""

from sqlmodel import SQLModel

from orchestrator.db import access, catalogue, orders, outbox, sourcing  # noqa: F401

metadata = SQLModel.metadata
