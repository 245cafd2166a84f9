"""Every table, imported once, so alembic and the drift test see one complete MetaData."""

from sqlmodel import SQLModel

from orchestrator.catalogue import tables as catalogue_tables  # noqa: F401
from orchestrator.orders import tables as order_tables  # noqa: F401
from orchestrator.platform import access_tables, outbox  # noqa: F401
from orchestrator.sourcing import tables as sourcing_tables  # noqa: F401

metadata = SQLModel.metadata
