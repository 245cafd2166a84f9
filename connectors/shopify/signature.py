"""Shopify's webhook signature: ``X-Shopify-Hmac-Sha256`` is the base64 of the HMAC-SHA256 of the
raw body under the app's client secret (the connector's ``webhook_secret``). Pure."""

from __future__ import annotations

import base64
import hashlib
import hmac

# Checked against when the connector is unknown, so an unknown id costs what a known one does.
STAND_IN_SECRET = "no connector has this secret"


def signature_of(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def signed_by(body: bytes, header: str | None, secret: str) -> bool:
    """Whether ``header`` is the body's signature under ``secret``; constant-time in the header."""
    expected = signature_of(body, secret).encode()
    given = (header or "").strip().encode("ascii", errors="replace")
    return hmac.compare_digest(expected, given) and bool(header)
