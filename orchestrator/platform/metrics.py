"""Business metrics (HTTP latency comes from litestar's Prometheus middleware)."""

from prometheus_client import Counter

ORDERS_CREATED = Counter("orchestrator_orders_created_total", "Orders created", ["channel"])
RESERVATIONS_FAILED = Counter(
    "orchestrator_reservations_failed_total", "Orders refused for insufficient stock", ["channel"]
)
OUTBOX_PUBLISHED = Counter("orchestrator_outbox_published_total", "Outbox events published")
