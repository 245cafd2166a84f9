"""Business metrics (HTTP latency comes from litestar's Prometheus middleware)."""

from prometheus_client import Counter

ORDERS_CREATED = Counter("orchestrator_orders_created_total", "Orders created", ["channel"])
RESERVATIONS_FAILED = Counter(
    "orchestrator_reservations_failed_total", "Orders refused for insufficient stock", ["channel"]
)
OUTBOX_PUBLISHED = Counter("orchestrator_outbox_published_total", "Outbox events published")
WEBHOOK_ATTEMPTS = Counter(
    "orchestrator_webhook_attempts_total", "Webhook delivery attempts, by what became of the delivery", ["outcome"]
)
WEBHOOK_SUBSCRIPTIONS_DISABLED = Counter(
    "orchestrator_webhook_subscriptions_disabled_total", "Subscriptions switched off after days of failures"
)
