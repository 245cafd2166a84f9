"""Square's webhook signature: ``x-square-hmacsha256-signature`` is the base64 of the HMAC-SHA256,
under the subscription's signature key, of the notification URL followed by the raw body. The URL
is the one configured in Square, byte for byte (the connector's ``settings.notification_url``):
what this service sees as its own URL behind a proxy may differ. Pure."""

from __future__ import annotations

import base64
import hashlib
import hmac

# Checked against when the connector is unknown, so an unknown id costs what a known one does.
STAND_IN_KEY = "no connector has this signature key"
STAND_IN_URL = "https://no-connector.invalid/"


def signature_of(notification_url: str, body: bytes, key: str) -> str:
    digest = hmac.new(key.encode(), notification_url.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signed_by(notification_url: str, body: bytes, header: str | None, key: str) -> bool:
    """Whether ``header`` is the signature of URL + body under ``key``; constant-time in the header."""
    expected = signature_of(notification_url, body, key).encode()
    given = (header or "").strip().encode("ascii", errors="replace")
    return hmac.compare_digest(expected, given) and bool(header)
