"""Which processing each connector kind's receipts get, and the flow they run in."""

from __future__ import annotations

from orchestrator.connections import amazon_receipts, shopify_receipts, square_receipts
from orchestrator.connections.model import Kind
from orchestrator.connections.receipts import Handler, Processing
from orchestrator.fulfillment.service import LifecycleSettings
from orchestrator.payments.gateway import PaymentGateway
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import Database
from orchestrator.settings import Settings

HANDLERS: dict[str, Handler] = {
    Kind.SHOPIFY.value: shopify_receipts.apply,
    Kind.AMAZON.value: amazon_receipts.apply,
    Kind.SQUARE.value: square_receipts.apply,
}


def processing(
    db: Database, clock: Clock, lifecycle: LifecycleSettings, settings: Settings, gateway: PaymentGateway
) -> Processing:
    return Processing(db, clock, lifecycle, settings, gateway, HANDLERS)
