"""The app factory: everything the service needs is built here, from settings, never at import."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Request
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusConfig
from redis.asyncio import Redis

from connectors.shopify.receiver import PUBLIC_PATTERN as SHOPIFY_WEBHOOKS
from connectors.shopify.receiver import ShopifyWebhookController
from connectors.square.receiver import PUBLIC_PATTERN as SQUARE_WEBHOOKS
from connectors.square.receiver import SquareWebhookController
from orchestrator.catalogue.api import LocationController, ProductController
from orchestrator.connections.api import ConnectorController
from orchestrator.fulfillment.api import (
    FulfillmentController,
    FulfillmentReadController,
    LocationQueueController,
)
from orchestrator.fulfillment.dependencies import LIFECYCLE_DEPENDENCIES
from orchestrator.fulfillment.service import LifecycleSettings
from orchestrator.inventory.api import StockController
from orchestrator.inventory.availability_api import AvailabilityController
from orchestrator.orders.api import OrderController
from orchestrator.orders.counter_api import PickupLookupController
from orchestrator.orders.customers_api import CustomerController
from orchestrator.orders.order_changes_api import OrderChangeController
from orchestrator.orders.order_stream_api import OrderStreamController, order_stream_state
from orchestrator.orders.public_api import PublicOrderController
from orchestrator.orders.resource_api import ReSourceController
from orchestrator.orders.stripe_webhooks_api import PUBLIC_PATTERN as STRIPE_WEBHOOKS
from orchestrator.orders.stripe_webhooks_api import StripeWebhookController
from orchestrator.payments.dependencies import PAYMENT_DEPENDENCIES
from orchestrator.payments.gateway import PaymentGateway
from orchestrator.payments.refunds_api import RefundController
from orchestrator.payments.stripe_gateway import payment_gateway
from orchestrator.platform.api_keys import KeyResolver
from orchestrator.platform.auth import PUBLIC_PATTERNS, ApiKeyMiddleware
from orchestrator.platform.clock import Clock, SystemClock
from orchestrator.platform.db import Database
from orchestrator.platform.http.api_keys_api import ApiKeyController
from orchestrator.platform.http.boundary import HttpBoundary
from orchestrator.platform.http.dependencies import DEPENDENCIES
from orchestrator.platform.http.docs import asset_routers, render_plugins
from orchestrator.platform.http.health import HealthController, MetricsController
from orchestrator.platform.http.json_bodies import StrictJsonRequest, stand_in_for_an_absent_body
from orchestrator.platform.http.query_params import reject_undeclared_query_parameters
from orchestrator.platform.observability import RequestContextMiddleware, configure_logging
from orchestrator.platform.problems import EXCEPTION_HANDLERS
from orchestrator.settings import Settings
from orchestrator.sourcing.api import SourcingController, SourcingProfileController
from orchestrator.webhooks.api import WebhookDeliveryController, WebhookSubscriptionController
from orchestrator.webhooks.notifications_api import OrderNotificationController

API_DESCRIPTION = """
One order, one inventory, one customer for every channel: web, app, marketplaces and store POS
place orders here; stores pick, hand over and ship them; every channel reads the same record.

Authenticate with `Authorization: Bearer <api key>`. Errors are RFC 9457 problem details.
"""


async def before_handler(request: Request) -> None:
    """litestar takes one ``before_request``: what a request must pass before its handler's
    parameters and body are read."""
    await reject_undeclared_query_parameters(request)
    await stand_in_for_an_absent_body(request)


def create_app(
    settings: Settings | None = None,
    *,
    db: Database | None = None,
    redis: Redis | None = None,
    clock: Clock | None = None,
    gateway: PaymentGateway | None = None,
) -> Litestar:
    settings = settings or Settings()
    now = clock or SystemClock()
    configure_logging(settings.log_level)
    # One gateway (one HTTP client to Stripe) for the app's life; without a key it refuses.
    payments = gateway or payment_gateway(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        owned_db = db is None
        owned_redis = redis is None
        if settings.database_url is None and db is None:
            raise RuntimeError("ORCHESTRATOR_DATABASE_URL is not set (or run `orchestrator dev`)")
        database = db or Database(
            settings.database_url or "",
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            connect_timeout_s=settings.db_connect_timeout_s,
            pool_timeout_s=settings.db_pool_timeout_s,
            statement_timeout_ms=settings.db_statement_timeout_ms,
        )
        client = redis or Redis.from_url(settings.redis_url or "redis://127.0.0.1:6379/0")
        app.state.db = database
        app.state.redis = client
        app.state.key_resolver = KeyResolver(database, settings.admin_token_value, now, ttl=settings.key_cache_seconds)
        for name, value in order_stream_state(settings, client).items():
            setattr(app.state, name, value)
        # Everything built so far lives as long as the process: keep it out of every future
        # garbage collection (fewer, shorter pauses on the request path).
        gc.freeze()
        try:
            yield
        finally:
            await app.state.order_feed.aclose()
            if owned_db:
                await database.dispose()
            if owned_redis:
                await client.aclose()
            if gateway is None:
                await payments.aclose()

    prometheus = PrometheusConfig(app_name="orchestrator", prefix="orchestrator", group_path=True, exclude=["/metrics"])
    lifecycle = LifecycleSettings.from_settings(settings)
    app = Litestar(
        route_handlers=[
            OrderController,
            OrderChangeController,
            OrderStreamController,
            ReSourceController,
            PickupLookupController,
            CustomerController,
            PublicOrderController,
            RefundController,
            LocationController,
            StockController,
            LocationQueueController,
            ProductController,
            AvailabilityController,
            FulfillmentReadController,
            FulfillmentController,
            SourcingProfileController,
            SourcingController,
            StripeWebhookController,
            ConnectorController,
            ShopifyWebhookController,
            SquareWebhookController,
            ApiKeyController,
            WebhookSubscriptionController,
            WebhookDeliveryController,
            OrderNotificationController,
            HealthController,
            MetricsController,
            *asset_routers(),
        ],
        request_class=StrictJsonRequest,
        before_request=before_handler,
        dependencies={**DEPENDENCIES, **LIFECYCLE_DEPENDENCIES, **PAYMENT_DEPENDENCIES},
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            DefineMiddleware(RequestContextMiddleware, log_requests=settings.access_log),
            prometheus.middleware,
            DefineMiddleware(
                ApiKeyMiddleware, exclude=[*PUBLIC_PATTERNS, STRIPE_WEBHOOKS, SHOPIFY_WEBHOOKS, SQUARE_WEBHOOKS]
            ),
        ],
        lifespan=[lifespan],
        state=State({"settings": settings, "clock": now, "lifecycle": lifecycle, "gateway": payments}),
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Omnichannel Order Orchestrator",
            version="1.0.0",
            description=API_DESCRIPTION,
            path="/schema",
            render_plugins=render_plugins(),
            components=Components(
                security_schemes={
                    "apiKey": SecurityScheme(type="http", scheme="bearer", description="API key"),
                }
            ),
            security=[{"apiKey": []}],
        ),
        debug=False,
    )
    # In front of litestar's router, so that unrouted requests (404, 405) pass it too.
    app.asgi_handler = HttpBoundary(app.asgi_handler, max_header_bytes=settings.max_header_bytes)
    return app
