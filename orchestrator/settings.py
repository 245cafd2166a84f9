"""Settings: one place, read from the environment (prefix ``ORCHESTRATOR_``) and ``.env``."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORCHESTRATOR_", env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL (postgresql+asyncpg://...). Unset: `dev` starts an embedded one.",
    )
    redis_url: str | None = Field(default=None, description="redis://host:port/db")
    admin_token: SecretStr | None = Field(default=None, description="bootstrap admin API key")
    secret_key: SecretStr = Field(
        default=SecretStr("dev-only-secret-change-me"),
        description="server secret; keys pickup codes (HMAC) so a database dump cannot reveal them",
    )
    # Guest tracking (``orders/public_lookup.py``): a token found by order number and email or phone.
    tracking_token_ttl_days: int = Field(
        default=30, gt=0, description="how long a guest tracking token is valid (a link lives as long as the order)"
    )
    tracking_secrets: SecretStr | None = Field(
        default=None,
        description="comma-separated: the first signs tracking tokens, every one verifies (rotation); "
        "unset: derived from secret_key",
    )
    customer_auto_merge: bool = Field(
        default=False,
        description="an order carrying identities of two customers merges them at once; false: it "
        "attaches to one and records a merge suggestion for an admin",
    )
    # Outbound webhooks (``orchestrator/webhooks``), sent by the worker.
    webhook_allow_private_urls: bool = Field(
        default=False,
        description="let subscriptions use http and reach loopback and private addresses (tests, dev)",
    )
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, description="one delivery attempt, connect to answer")
    webhook_max_in_flight_per_subscription: int = Field(
        default=4, gt=0, description="open requests to one subscriber (a hanging one holds only these)"
    )
    webhook_max_in_flight: int = Field(default=64, gt=0, description="open webhook requests in all, per worker")
    webhook_delivery_retention_days: int = Field(
        default=30, gt=0, description="delivered and dead deliveries are listed and replayable this long"
    )
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    # Connections are kept, not churned: overflow connections are closed on return and a new
    # one costs a connect and re-preparing every statement.
    db_pool_size: int = 40
    db_max_overflow: int = 10
    # API requests only (the CSV import and migrations keep their own): every wait on the
    # database is bounded, so a hung server costs a request seconds and a 503, not a hang.
    db_connect_timeout_s: float = Field(default=2.0, gt=0, description="API: opening a connection")
    db_pool_timeout_s: float = Field(default=5.0, gt=0, description="API: waiting for a pooled connection")
    db_statement_timeout_ms: int = Field(
        default=3000, gt=0, description="API: one statement (server-side; the client gives up 1 s later)"
    )
    max_body_bytes: int = 256 * 1024
    max_header_bytes: int = Field(
        default=16 * 1024, gt=0, description="all request headers together; more is a 431 problem"
    )
    access_log: bool = True
    log_level: str = "INFO"
    default_phone_region: str = "US"
    state_dir: Path = Field(default=Path(".orchestrator"), description="embedded servers' data")
    events_stream: str = "orchestrator:events"
    events_stream_maxlen: int = 1_000_000
    events_stream_retention_hours: float = Field(
        default=72.0, gt=0, description="stream entries older than this are trimmed (they may carry pickup codes)"
    )
    # Live order streams (``GET /v1/orders/{id}/stream``); the bounds hold per server process.
    order_stream_heartbeat_seconds: float = Field(
        default=15.0, gt=0, description="an idle order stream sends a comment line this often (proxies keep it open)"
    )
    order_stream_max_per_key: int = Field(default=20, gt=0, description="open order streams per API key")
    order_stream_max_connections: int = Field(default=1000, gt=0, description="open order streams in all")
    outbox_batch_size: int = 200
    outbox_claim_seconds: int = 30
    outbox_poll_seconds: float = Field(
        default=5.0, gt=0, description="the worker drains this often when no NOTIFY wakes it"
    )
    pickup_reminder_hours: float = 24.0
    pickup_max_failed_attempts: int = 5
    pickup_lockout_minutes: int = 15
    key_cache_seconds: float = 10.0
    # Payments (issue 9). Without a Stripe key the service runs and refuses Stripe payments.
    stripe_api_key: SecretStr | None = Field(default=None, description="Stripe secret key (sk_...)")
    stripe_webhook_secret: SecretStr | None = Field(
        default=None, description="signing secret of the Stripe webhook endpoint (whsec_...)"
    )
    stripe_api_base: str = Field(
        default="https://api.stripe.com", description="Stripe's API address; tests point it at a loopback server"
    )
    payment_action_timeout_minutes: int = Field(
        default=30, gt=0, description="a payment awaiting 3-D Secure holds its reservation this long"
    )
    payment_required_channels: list[str] = Field(
        default_factory=list,
        description='channels whose orders must carry a payment, as JSON: ["web", "pos:STORE-1"]',
    )
    authorisation_expiry_warning_hours: float = Field(
        default=24.0,
        gt=0,
        description="this long before a card authorisation lapses, an order with goods still to hand over is flagged",
    )
    payment_save_method_channels: list[str] = Field(
        default_factory=lambda: ["web", "app"],
        description="channels whose card is kept for off-session charges (setup_future_usage), as JSON; "
        "marketplaces and store POS collect themselves or have the customer there, so never by default",
    )

    @property
    def tracking_secret_values(self) -> list[str]:
        """The tracking secrets, signing one first; derived from ``secret_key`` when none is set, so
        development and tests need no setting and a token never verifies under the bare server secret."""
        listed = self.tracking_secrets.get_secret_value() if self.tracking_secrets else ""
        named = [s.strip() for s in listed.split(",") if s.strip()]
        if named:
            return named
        server = self.secret_key.get_secret_value().encode()
        return [hmac.new(server, b"tracking-token", hashlib.sha256).hexdigest()]

    # A plain property, never cached: a cached value would be copied by ``model_copy`` and keep
    # answering for the token before the copy (``orchestrator dev`` sets it that way).
    @property
    def admin_token_value(self) -> str | None:
        return self.admin_token.get_secret_value() if self.admin_token else None
