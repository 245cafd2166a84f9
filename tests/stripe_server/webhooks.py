"""Signed webhook deliveries as Stripe makes them: ``Stripe-Signature: t=<unix>,v1=<hex>``, the
HMAC-SHA256 of ``"<t>.<raw body>"`` under the endpoint's signing secret
(https://docs.stripe.com/webhooks#verify-manually). Computed here by hand, not by the SDK, so
the service's verification is checked against the documented scheme."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from tests.stripe_server.objects import event

__all__ = ["deliver", "deliver_async", "emitted", "event", "signature_header"]


def signature_header(payload: bytes, secret: str, *, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def signed_event(
    payload: dict[str, Any] | bytes, secret: str, *, timestamp: int | None = None, signature: str | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and headers Stripe sends; ``signature`` overrides the header (tests of bad signatures)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload, indent=2).encode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "Stripe-Signature": signature or signature_header(body, secret, timestamp=timestamp),
    }
    return body, headers


def deliver(
    client: httpx.Client | None,
    url: str,
    payload: dict[str, Any] | bytes,
    secret: str,
    *,
    timestamp: int | None = None,
    signature: str | None = None,
) -> httpx.Response:
    """POST one event."""
    body, headers = signed_event(payload, secret, timestamp=timestamp, signature=signature)
    if client is None:
        return httpx.post(url, content=body, headers=headers)
    return client.post(url, content=body, headers=headers)


async def deliver_async(
    client: httpx.AsyncClient,
    url: str,
    payload: dict[str, Any] | bytes,
    secret: str,
    *,
    timestamp: int | None = None,
    signature: str | None = None,
) -> httpx.Response:
    body, headers = signed_event(payload, secret, timestamp=timestamp, signature=signature)
    return await client.post(url, content=body, headers=headers)


def emitted(events: list[dict[str, Any]], event_type: str, intent_id: str) -> list[dict[str, Any]]:
    """The events of ``event_type`` the server emitted about one PaymentIntent (its own, its
    charge's or a dispute's), oldest first: what Stripe would deliver."""

    def about(obj: dict[str, Any]) -> bool:
        return (
            obj.get("id") == intent_id
            if obj.get("object") == "payment_intent"
            else obj.get("payment_intent") == intent_id
        )

    return [e for e in events if e["type"] == event_type and about(e["data"]["object"])]
