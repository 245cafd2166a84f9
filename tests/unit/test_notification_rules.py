"""Issue #12, notifications: which events make one, routing, and every template renders with
what the context gives it (StrictUndefined: a missing value is an error, not a blank)."""

from __future__ import annotations

import pytest

from orchestrator.webhooks.notification_rules import MASK, Contact, body_for, context_of, route, template_for
from orchestrator.webhooks.notification_templates import render

ORDER = {"number": "K7-2Q9M", "currency": "USD", "total": 2599, "customer_name": "Ada <script>"}
STORE = {
    "name": "Store Mitte",
    "address": {"line1": "1 Main St", "city": "Berlin"},
    "timezone": "Europe/Berlin",
    "opening_hours": {"mon": [["09:00", "20:00"]], "sun": []},
}
DATA = {
    "confirmed": {},
    "ready_for_pickup": {"location": "S1", "method": "pickup", "pickup_deadline": "2026-12-08T18:00:00+00:00"},
    "pickup_reminder": {"location": "S1", "method": "pickup", "pickup_deadline": "2026-12-08T18:00:00+00:00"},
    "shipped": {"location": "S1", "method": "ship", "carrier": "UPS", "tracking_number": "1Z999"},
    "action_required": {
        "options": [{"description": "Pick up at Store Nord"}, {"description": "Wait for a transfer"}],
        "fallback": "transfer",
        "deadline": "2026-12-02T12:00:00+00:00",
    },
    "cancelled": {"reason": "payment_failed"},
    "delayed": {"location": "S1", "method": "pickup", "expected_ready_at": "2026-12-08T10:00:00+00:00"},
    "refunded": {"amount_refunded": 1250},
}


@pytest.mark.parametrize("template", sorted(DATA))
def test_every_template_renders_for_every_channel(template):
    rendered = render(template, context_of(template, DATA[template], ORDER, STORE, "482913"))
    assert all(rendered[k] for k in ("subject", "text", "short", "html"))
    assert "K7-2Q9M" in rendered["text"] and "K7-2Q9M" in rendered["html"]
    assert "<script>" not in rendered["html"]  # autoescaped
    for channel in ("email", "sms", "whatsapp", "push"):
        assert body_for(channel, rendered)["text"]


def test_ready_for_pickup_says_where_until_when_in_the_stores_time_with_the_code():
    rendered = render(
        "ready_for_pickup", context_of("ready_for_pickup", DATA["ready_for_pickup"], ORDER, STORE, "482913")
    )
    assert "Store Mitte, 1 Main St, Berlin" in rendered["text"]
    assert "Tue 8 Dec, 19:00" in rendered["text"]  # 18:00 UTC is 19:00 in Berlin
    assert "482913" in rendered["short"] and "482913" in rendered["html"]
    assert "Mon 09:00–20:00" in rendered["text"]
    masked = render("ready_for_pickup", context_of("ready_for_pickup", DATA["ready_for_pickup"], ORDER, STORE, MASK))
    assert "482913" not in str(masked) and MASK in masked["short"]


def test_money_follows_the_currency():
    assert "$25.99" in render("confirmed", context_of("confirmed", {}, ORDER, None, None))["text"]
    yen = render("confirmed", context_of("confirmed", {}, {**ORDER, "currency": "JPY", "total": 2599}, None, None))
    assert "¥2,599" in yen["text"]


def test_which_events_notify():
    assert template_for("order.placed", {}) == "confirmed"
    assert template_for("fulfillment.shipped", {"method": "ship"}) == "shipped"
    assert template_for("fulfillment.shipped", {"method": "transfer"}) is None
    assert template_for("fulfillment.accepted", {}) is None


def test_routing_preferred_then_last_used_then_reachable():
    both = Contact("c1", "a@example.com", "+14155550100")
    assert route(both, {"email", "sms"}) == ("email", "a@example.com")
    assert route(Contact("c1", "a@example.com", "+1415", last_channel="sms"), {"email", "sms"}) == ("sms", "+1415")
    preferred = Contact("c1", "a@example.com", "+1415", "whatsapp", "+4915", "sms")
    assert route(preferred, {"email", "sms", "whatsapp"}) == ("whatsapp", "+4915")
    assert route(preferred, {"email", "sms"}) == ("sms", "+1415")  # the preference has no sender
    assert route(Contact("c1", None, "+1415"), {"email"}) is None
    assert route(Contact("c1", None, None), {"push"}) == ("push", "customer:c1")
