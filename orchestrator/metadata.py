"""Every table, imported once, so alembic and the drift test see one complete MetaData."""

from sqlmodel import SQLModel

from orchestrator.catalogue import tables as catalogue_tables  # noqa: F401
from orchestrator.connections import tables as connection_tables  # noqa: F401
from orchestrator.customers import tables as customer_tables  # noqa: F401
from orchestrator.fulfillment import counter_tables  # noqa: F401
from orchestrator.inventory import tables as inventory_tables  # noqa: F401
from orchestrator.order_record import tables as order_tables  # noqa: F401
from orchestrator.payments import tables as payment_tables  # noqa: F401
from orchestrator.platform import api_keys, idempotency_tables, outbox  # noqa: F401
from orchestrator.sourcing import tables as sourcing_tables  # noqa: F401
from orchestrator.webhooks import tables as webhook_tables  # noqa: F401

metadata = SQLModel.metadata
