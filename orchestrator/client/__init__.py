"""A typed async client for storefronts and POS systems (``pip install`` this project, import
``orchestrator.client``). It depends on nothing else of the service: only httpx, msgspec and
standardwebhooks.

    async with OrchestratorClient("https://orders.example", api_key) as oo:
        order = await oo.place_order({...})               # an Idempotency-Key made once, reused on retry
        order = await oo.change_order(order.id, order.version, [{"type": "cancel_line", ...}])
        async for event in oo.follow(order.id):           # SSE, resumed with Last-Event-ID
            ...
    event = verify_webhook(body, headers, "whsec_...")    # a delivery, verified (Standard Webhooks)
"""

from orchestrator.client.api import ApiError, OrchestratorClient, Order, StreamEvent, verify_webhook

__all__ = ["ApiError", "OrchestratorClient", "Order", "StreamEvent", "verify_webhook"]
