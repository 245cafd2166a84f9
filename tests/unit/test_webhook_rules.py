"""Webhook rules (issue #12): matching, the envelope, the retry schedule, dead and disabled, and
which addresses a delivery may reach (no SSRF)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from orchestrator.platform.errors import InvalidRequest
from orchestrator.webhooks import sender
from orchestrator.webhooks.model import (
    DISABLE_AFTER,
    GIVE_UP_AFTER,
    AttemptResult,
    address_allowed,
    after_attempt,
    checked_event_types,
    checked_url,
    envelope,
    failing_since,
    matches,
    retry_delay,
    should_disable,
)

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def test_patterns_match_exact_types_prefix_wildcards_and_everything():
    assert matches(["order.*"], "order.placed")
    assert not matches(["order.*"], "orders.placed")
    assert not matches(["order.*"], "fulfillment.picked")
    assert matches(["fulfillment.picked"], "fulfillment.picked")
    assert matches(["*"], "payment.captured")
    assert not matches([], "order.placed")


def test_event_types_must_each_take_a_known_type():
    known = ["order.placed", "fulfillment.picked"]
    assert checked_event_types(["order.*", "order.placed"], known) == ["order.*", "order.placed"]
    with pytest.raises(InvalidRequest):
        checked_event_types(["order.placd"], known)
    with pytest.raises(InvalidRequest):
        checked_event_types([], known)


def test_the_envelope_carries_the_order_and_never_a_private_field():
    message = {
        "id": "e1",
        "type": "fulfillment.ready_for_pickup",
        "order_id": "o1",
        "order_number": "K7-2Q9M",
        "order_version": 5,
        "channel": "web",
        "seq": 4,
        "actor": "staff:S1",
        "occurred_at": "2026-12-01T12:00:00+00:00",
        "data": {"fulfillment_id": "f1", "pickup_code": "123456"},
    }
    body = envelope(message, ["pickup_code"])
    assert body == {
        "id": "e1",
        "type": "fulfillment.ready_for_pickup",
        "timestamp": "2026-12-01T12:00:00+00:00",
        "data": {
            "order_id": "o1",
            "order_number": "K7-2Q9M",
            "order_version": 5,
            "channel": "web",
            "fulfillment_id": "f1",
        },
    }


def test_retries_double_with_bounded_jitter_up_to_an_hour_and_are_repeatable():
    d = uuid.uuid4()
    delays = [retry_delay(n, d) for n in range(1, 30)]
    assert delays == [retry_delay(n, d) for n in range(1, 30)]  # a function of (delivery, attempt)
    for n, delay in enumerate(delays, start=1):
        base = min(timedelta(seconds=5) * 2 ** (n - 1), timedelta(hours=1))
        assert base * 0.75 <= delay <= base * 1.25
    assert len({retry_delay(1, uuid.uuid4()) for _ in range(20)}) > 1  # jittered across deliveries


def test_a_delivery_is_dead_once_its_next_try_would_fall_past_72_hours():
    d, failed = uuid.uuid4(), AttemptResult(500, 10, "HTTP 500")
    assert after_attempt(AttemptResult(204, 10), 1, d, NOW, NOW).status == "delivered"
    early = after_attempt(failed, 1, d, NOW, NOW)
    assert early.status == "failed" and early.next_attempt_at == NOW + retry_delay(1, d)
    late = NOW + GIVE_UP_AFTER - timedelta(seconds=1)
    assert after_attempt(failed, 40, d, NOW, late).status == "dead"
    assert after_attempt(AttemptResult(None, 5000, "timed out"), 1, d, NOW, NOW).status == "failed"


def test_five_days_of_failures_disable_and_one_success_ends_the_streak():
    failed, ok = AttemptResult(500, 1), AttemptResult(200, 1)
    assert failing_since(None, failed, NOW) == NOW
    assert failing_since(NOW - timedelta(days=1), failed, NOW) == NOW - timedelta(days=1)
    assert failing_since(NOW - timedelta(days=1), ok, NOW) is None
    assert not should_disable(NOW - DISABLE_AFTER + timedelta(seconds=1), NOW)
    assert should_disable(NOW - DISABLE_AFTER, NOW)
    assert not should_disable(None, NOW)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.9",
        "192.168.1.1",
        "169.254.169.254",
        "::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "0.0.0.0",
        "100.64.0.1",
        "224.0.0.1",
    ],
)
def test_private_loopback_and_link_local_addresses_are_refused_unless_allowed(address):
    assert not address_allowed(address, allow_private=False)
    assert address_allowed(address, allow_private=True)


def test_public_addresses_are_allowed():
    assert address_allowed("93.184.215.14", allow_private=False)
    assert address_allowed("2606:4700:4700::1111", allow_private=False)


def test_urls_must_be_https_unless_private_urls_are_allowed():
    assert checked_url("https://hooks.example.com/x?y=1", allow_private=False)
    for bad in ("http://hooks.example.com/x", "ftp://x/y", "https:///x", "https://u:p@h.example/x", "https://h:port/"):
        with pytest.raises(InvalidRequest):
            checked_url(bad, allow_private=False)
    assert checked_url("http://127.0.0.1:9/x", allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:1/h",
        "https://localhost:1/h",
        "https://[::1]:1/h",
        "https://10.9.8.7/h",
        "https://169.254.169.254/latest/meta-data",
    ],
)
async def test_a_delivery_to_a_private_address_is_refused_before_connecting(url):
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"connected to {request.url}")

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        result = await sender.attempt(client, url, "{}", {}, seconds=2, allow_private=False)
    assert result.status_code is None and result.error.startswith("address not allowed")


async def test_the_request_goes_to_the_checked_address_with_the_original_host():
    seen = {}

    def answer(request: httpx.Request) -> httpx.Response:
        seen.update(url=str(request.url), host=request.headers["host"], sni=request.extensions.get("sni_hostname"))
        return httpx.Response(204)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        result = await sender.attempt(client, "http://localhost:8123/h?x=1", "{}", {}, seconds=2, allow_private=True)
    assert result.delivered
    assert seen["url"] in ("http://127.0.0.1:8123/h?x=1", "http://[::1]:8123/h?x=1")
    assert seen["host"] == "localhost:8123"
