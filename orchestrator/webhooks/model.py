"""Webhook rules, pure: which events a subscription takes, the body it is sent, when a failed
delivery is tried again, when it is dead and when a failing subscription is switched off, and
which addresses a delivery may go to."""

from __future__ import annotations

import hashlib
import ipaddress
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from orchestrator.platform.errors import InvalidRequest

# Retries: 5 s, 10 s, 20 s ... doubling up to an hour apart, each jittered by up to ±25 % so the
# deliveries one outage failed together do not come back together; dead 72 h after the event.
FIRST_RETRY = timedelta(seconds=5)
LONGEST_WAIT = timedelta(hours=1)
GIVE_UP_AFTER = timedelta(hours=72)
DISABLE_AFTER = timedelta(days=5)
TEST_EVENT = "webhook.test"
SUBSCRIPTION_DISABLED = "webhook.subscription_disabled"
RECEIPT_UNMAPPED = "connector.receipt_unmapped"
# Events about the service rather than an order (``service_events``), which subscriptions may name.
SERVICE_EVENTS = (TEST_EVENT, SUBSCRIPTION_DISABLED, RECEIPT_UNMAPPED)


def matches(patterns: Iterable[str], event_type: str) -> bool:
    """``order.*`` takes every ``order.`` event, ``*`` every event, anything else itself."""
    return any(p in ("*", event_type) or (p.endswith(".*") and event_type.startswith(p[:-1])) for p in patterns)


def checked_event_types(patterns: Iterable[str], known: Iterable[str]) -> list[str]:
    """The patterns, each of which must take at least one known event type."""
    catalogue = sorted(known)
    chosen = sorted(set(patterns))
    if not chosen:
        raise InvalidRequest("name at least one event type (or a wildcard like order.*)", field="event_types")
    unknown = [p for p in chosen if not any(matches([p], t) for t in catalogue)]
    if unknown:
        raise InvalidRequest(
            f"no event type matches {', '.join(unknown)}; see docs/events.md", field="event_types", known=catalogue
        )
    return chosen


def envelope(message: Mapping[str, Any], private: Iterable[str]) -> dict[str, Any]:
    """The Standard Webhooks body for an outbox message: ``{id, type, timestamp, data}`` with the
    order's id, number, version and channel beside the event's fields (never the private ones: a
    pickup code reaches the customer through a notification only)."""
    hidden = set(private)
    fields = {k: v for k, v in (message.get("data") or {}).items() if k not in hidden}
    return {
        "id": message["id"],
        "type": message["type"],
        "timestamp": message["occurred_at"],
        "data": {
            "order_id": message["order_id"],
            "order_number": message["order_number"],
            "order_version": message.get("order_version"),
            "channel": message["channel"],
            **fields,
        },
    }


def ping_envelope(event_id: uuid.UUID, subscription_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    return {
        "id": str(event_id),
        "type": TEST_EVENT,
        "timestamp": now.isoformat(),
        "data": {"subscription_id": str(subscription_id)},
    }


def retry_delay(attempt: int, delivery_id: uuid.UUID) -> timedelta:
    """How long after failed attempt number ``attempt`` (1, 2, ...) to try again. The jitter is
    derived from the delivery and the attempt, so the schedule is a function (a restart or a test
    computes the same time)."""
    base = min(FIRST_RETRY * (2 ** min(attempt - 1, 20)), LONGEST_WAIT)
    spread = hashlib.blake2b(f"{delivery_id}:{attempt}".encode(), digest_size=2).digest()
    factor = 0.75 + int.from_bytes(spread, "big") / 65535 * 0.5
    return base * factor


@dataclass(frozen=True, slots=True)
class AttemptResult:
    status_code: int | None  # None: no answer (refused, timed out, an address not allowed)
    duration_ms: int
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True, slots=True)
class AfterAttempt:
    status: str  # delivered | failed | dead
    next_attempt_at: datetime | None


def after_attempt(
    result: AttemptResult, attempt: int, delivery_id: uuid.UUID, first_at: datetime, now: datetime
) -> AfterAttempt:
    """Where a delivery stands after attempt number ``attempt``; ``first_at``: when it was due first."""
    if result.delivered:
        return AfterAttempt("delivered", None)
    retry_at = now + retry_delay(attempt, delivery_id)
    if retry_at - first_at > GIVE_UP_AFTER:
        return AfterAttempt("dead", None)
    return AfterAttempt("failed", retry_at)


def failing_since(previous: datetime | None, result: AttemptResult, now: datetime) -> datetime | None:
    """A success ends a subscription's failing streak; a failure starts one or continues it."""
    if result.delivered:
        return None
    return previous or now


def should_disable(since: datetime | None, now: datetime) -> bool:
    return since is not None and now - since >= DISABLE_AFTER


def checked_url(url: str, allow_private: bool) -> str:
    """A subscription URL: https (http too when private addresses are allowed, for loopback in
    tests and dev), with a host, no credentials, no fragment."""
    parts = urlsplit(url)
    allowed = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed:
        raise InvalidRequest("a webhook URL must be https", field="url")
    if not parts.hostname or parts.username or parts.password or parts.fragment:
        raise InvalidRequest("a webhook URL needs a host and no credentials or fragment", field="url")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise InvalidRequest("a webhook URL's port must be a number", field="url") from None
    return url


def address_allowed(address: str, allow_private: bool) -> bool:
    """Whether a delivery may connect to ``address``: public addresses only, unless private ones
    are allowed (loopback, private ranges, link-local: where an attacker would point a webhook
    to reach the service's own network)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return allow_private or (ip.is_global and not ip.is_multicast)
