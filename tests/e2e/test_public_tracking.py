"""Issue 11, guest tracking: a customer without an account finds their order by its number and
email or phone, gets a signed tracking token, reads a redacted view of the order with it, checks
in at the curbside and applies a change the order offers. Every failed lookup is the same 404;
lookups are rate-limited per client address and per order number on the injected clock."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from orchestrator.app import create_app
from orchestrator.order_record.numbers import new_order_number
from orchestrator.orders import public_lookup
from orchestrator.orders.public_api import PER_ADDRESS, PER_NUMBER
from orchestrator.settings import Settings
from tests.e2e.conftest import Shop, running, settings_for
from tests.e2e.support import FAR, MID, NEAR, act, assert_problem, events, get_order, pickup_code, to_ready
from tests.stripe_server.fixtures import API_KEY

PHONE = "+1 415 555 0100"
STORE_ADDRESS = {"line1": "5 Shop Lane", "postal_code": "10115", "city": "Berlin", "country": "DE"}
SHIP_TO = {"name": "Ann Example", "line1": "1 Main St", "postal_code": "10117", "city": "Berlin", "country": "DE",
           "lat": 52.52, "lon": 13.40}  # fmt: skip


@asynccontextmanager
async def guest_shop(database_url, redis_url, db, redis, clock, **overrides: Any) -> AsyncIterator[Shop]:
    """The app served to a client at an address of this test's own: the per-address limit counts
    in the shared Redis, so no other test (nor a rerun within the window) shares its allowance."""
    app = create_app(settings_for(database_url, redis_url, **overrides), db=db, redis=redis, clock=clock)
    address = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with running(app), httpx.AsyncClient(transport=transport, base_url="http://orchestrator.test") as c:
        yield Shop(c, db, clock)


@pytest.fixture
async def guest(database_url, redis_url, db, redis, clock) -> AsyncIterator[Shop]:
    async with guest_shop(database_url, redis_url, db, redis, clock) as shop:
        yield shop


async def lookup(shop: Shop, number: str, **verifier: str) -> httpx.Response:
    return await shop.client.post("/v1/public/order-lookup", json={"number": number, **verifier})


async def token_for(shop: Shop, number: str, **verifier: str) -> str:
    r = await lookup(shop, number, **verifier)
    assert r.status_code == 200, r.text
    return r.json()["token"]


async def tracked(shop: Shop, token: str) -> httpx.Response:
    return await shop.client.get(f"/v1/public/orders/{token}")


def keys_of(value: Any) -> set[str]:
    """Every key anywhere in a JSON document."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_of(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_of(v)}
    return set()


async def place(shop: Shop, body: dict, *, phone: str | None = PHONE) -> dict:
    body["customer"]["name"] = "Ann Example"
    if phone:
        body["customer"]["phone"] = phone
    r = await shop.place(body)
    assert r.status_code == 201, r.text
    return r.json()


# --- lookup --------------------------------------------------------------------------------


async def test_lookup_by_email_or_phone_issues_a_token_valid_for_the_configured_days(guest, clock):
    await guest.location("S1", capabilities=("pickup",))
    await guest.product("A")
    await guest.stock("S1", "A", 5)
    order = await place(guest, guest.order_body([("A", 1)]))
    spoken = order["number"].lower().replace("-", " ")  # as a customer types it
    for verifier in ({"email": " ANN@example.com "}, {"phone": "(415) 555-0100"}, {"phone": PHONE}):
        r = await lookup(guest, spoken, **verifier)
        assert r.status_code == 200, (verifier, r.text)
        body = r.json()
        assert set(body) == {"token", "expires_at"}
        assert r.headers["cache-control"] == "no-store"
        assert datetime.fromisoformat(body["expires_at"]) - clock.now() <= timedelta(days=30)
        assert datetime.fromisoformat(body["expires_at"]) - clock.now() > timedelta(days=30, seconds=-1)
        shown = await tracked(guest, body["token"])
        assert shown.status_code == 200 and shown.json()["number"] == order["number"]
        assert shown.headers["cache-control"] == "no-store"


async def test_a_wrong_email_or_phone_is_the_same_404_as_an_unknown_number(guest):
    await guest.location("S1", capabilities=("pickup",))
    await guest.product("A")
    await guest.stock("S1", "A", 5)
    order = await place(guest, guest.order_body([("A", 1)]))
    other = await place(guest, guest.order_body([("A", 1)], email="bob@example.com"), phone="+1 212 555 0199")
    unknown = new_order_number()
    answers = [
        await lookup(guest, unknown, email="ann@example.com"),
        await lookup(guest, order["number"], email="bob@example.com"),  # another customer's email
        await lookup(guest, order["number"], phone="+1 212 555 0199"),  # another customer's phone
        await lookup(guest, other["number"], email="ann@example.com"),
        await lookup(guest, order["number"], email="ann@example.org"),
    ]
    first = assert_problem(answers[0], 404, "not-found")
    for r in answers[1:]:
        assert (r.status_code, r.headers["content-type"], r.json()) == (404, answers[0].headers["content-type"], first)
        assert r.content == answers[0].content
    assert "token" not in first


async def test_an_unknown_number_costs_the_same_work_as_a_wrong_or_right_verifier(guest, db, monkeypatch):
    """No early return that timing could tell apart: the same statements, and a token is signed
    whether or not it is handed out."""
    await guest.location("S1", capabilities=("pickup",))
    await guest.product("A")
    await guest.stock("S1", "A", 5)
    order = await place(guest, guest.order_body([("A", 1)]))
    statements: list[str] = []
    signed: list[str] = []
    real_issue = public_lookup.TrackingTokens.issue

    def issue(self, number, now):
        signed.append(number)
        return real_issue(self, number, now)

    def seen(conn, cursor, statement, *args):
        statements.append(statement)

    monkeypatch.setattr(public_lookup.TrackingTokens, "issue", issue)
    event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        work = []
        for number, email, status in (
            (new_order_number(), "ann@example.com", 404),
            (order["number"], "bob@example.com", 404),
            (order["number"], "ann@example.com", 200),
        ):
            statements.clear()
            signed.clear()
            assert (await lookup(guest, number, email=email)).status_code == status
            work.append((list(statements), len(signed)))
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", seen)
    assert work[0] == work[1] == work[2], work
    assert work[0][1] == 1 and any("SELECT" in s for s in work[0][0]), work


async def test_a_malformed_verifier_is_422_naming_the_field(guest):
    number = new_order_number()
    assert_problem(await lookup(guest, number, email="not an email"), 422, "invalid-request")
    assert_problem(await lookup(guest, number, phone="12"), 422, "invalid-request")
    both = assert_problem(await lookup(guest, number, email="a@example.com", phone=PHONE), 422, "invalid-request")
    assert both["errors"][0]["field"] == "email"
    assert_problem(await lookup(guest, number), 422, "invalid-request")


async def test_lookups_are_limited_per_order_number_and_per_address_with_retry_after(guest, clock):
    number = new_order_number()
    for _ in range(PER_NUMBER.attempts):
        assert (await lookup(guest, number, email="ann@example.com")).status_code == 404
    # The same number as spelt differently counts the same.
    limited = await lookup(guest, number.lower().replace("-", ""), email="ann@example.com")
    problem = assert_problem(limited, 429, "too-many-requests")
    assert "order number" in problem["detail"]
    assert 1 <= int(limited.headers["retry-after"]) <= PER_NUMBER.window.total_seconds()
    # Other numbers from the same address go on until the address's allowance is used up.
    for _ in range(PER_ADDRESS.attempts - PER_NUMBER.attempts - 1):
        assert (await lookup(guest, new_order_number(), email="ann@example.com")).status_code == 404
    by_address = await lookup(guest, new_order_number(), email="ann@example.com")
    assert "address" in assert_problem(by_address, 429, "too-many-requests")["detail"]
    assert int(by_address.headers["retry-after"]) >= 1
    # A new window (the injected clock decides it) opens both again.
    clock.advance(max(PER_ADDRESS.window, PER_NUMBER.window))
    assert (await lookup(guest, number, email="ann@example.com")).status_code == 404


# --- the token -----------------------------------------------------------------------------


async def test_a_tampered_or_expired_token_is_the_404_of_an_unknown_one(guest, clock):
    await guest.location("S1", capabilities=("pickup",))
    await guest.product("A")
    await guest.stock("S1", "A", 5)
    order = await place(guest, guest.order_body([("A", 1)]))
    token = await token_for(guest, order["number"], email="ann@example.com")
    payload, stamp, signature = token.split(".")
    # The first character: the last one of unpadded base64 also carries bits that decode to nothing.
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    unknown = (await tracked(guest, "not-a-token")).json()
    assert_problem(await tracked(guest, "not-a-token"), 404, "not-found")
    # Signed as the app signs, for a number no order has: the same 404 as a forged one.
    orphan = public_lookup.TrackingTokens.from_settings(Settings()).issue(new_order_number(), clock.now()).token
    assert (await tracked(guest, token)).status_code == 200
    for bad in (f"{payload}.{stamp}.{flipped}", f"{payload}x.{stamp}.{signature}", orphan):
        r = await tracked(guest, bad)
        assert r.status_code == 404
        assert {k: v for k, v in r.json().items() if k != "instance"} == {
            k: v for k, v in unknown.items() if k != "instance"
        }
    clock.advance(timedelta(days=30, seconds=-1))
    assert (await tracked(guest, token)).status_code == 200
    clock.advance(timedelta(seconds=1))
    expired = await tracked(guest, token)
    assert expired.status_code == 404 and expired.json()["detail"] == unknown["detail"]
    # Nor does an expired token arrive or change anything.
    assert (await guest.client.post(f"/v1/public/orders/{token}/arrival", json={})).status_code == 404
    r = await guest.client.post(f"/v1/public/orders/{token}/changes", json={"option": "go_without"})
    assert r.status_code == 404


async def test_a_token_signed_with_a_retired_secret_verifies_while_it_is_listed(
    database_url, redis_url, db, redis, clock
):
    async with guest_shop(database_url, redis_url, db, redis, clock, tracking_secrets="old-secret") as shop:
        await shop.location("S1", capabilities=("pickup",))
        await shop.product("A")
        await shop.stock("S1", "A", 5)
        order = await place(shop, shop.order_body([("A", 1)]))
        old = await token_for(shop, order["number"], email="ann@example.com")
    rotated = {"tracking_secrets": "new-secret, old-secret"}
    async with guest_shop(database_url, redis_url, db, redis, clock, **rotated) as shop:
        assert (await tracked(shop, old)).status_code == 200
        new = await token_for(shop, order["number"], email="ann@example.com")
        assert new.split(".")[2] != old.split(".")[2]
    async with guest_shop(database_url, redis_url, db, redis, clock, tracking_secrets="new-secret") as shop:
        assert (await tracked(shop, new)).status_code == 200  # the first secret signed it
        assert_problem(await tracked(shop, old), 404, "not-found")
    async with guest_shop(database_url, redis_url, db, redis, clock) as shop:  # derived from secret_key
        assert (await tracked(shop, new)).status_code == 404


# --- the redacted view ---------------------------------------------------------------------


@pytest.fixture
async def paid_guest(database_url, redis_url, db, redis, clock, stripe_api) -> AsyncIterator[Shop]:
    extra = {"stripe_api_key": API_KEY, "stripe_api_base": stripe_api.url}
    async with guest_shop(database_url, redis_url, db, redis, clock, **extra) as shop:
        yield shop


CARD = {"provider": "stripe", "payment_method": "pm_card_visa"}


async def test_the_pickup_view_shows_the_order_and_none_of_the_customer_payment_or_code(paid_guest, db):
    shop = paid_guest
    await shop.location("S1", capabilities=("pickup",), address=STORE_ADDRESS)
    await shop.product("A", name="Garden hose")
    await shop.stock("S1", "A", 5)
    order = await place(shop, {**shop.order_body([("A", 2)], price=1250), "shipping_total": 0, "payment": CARD})
    staff = await shop.staff("S1")
    await to_ready(shop, staff, order["fulfillment_orders"][0])
    code = await pickup_code(db, order["fulfillment_orders"][0]["id"])
    full = await get_order(shop, order["id"])
    assert full["payment"]["external_id"].startswith("pi_")

    r = await tracked(shop, await token_for(shop, order["number"], phone=PHONE))
    assert r.status_code == 200, r.text
    seen = r.json()
    # What the customer sees, field by field.
    assert (seen["number"], seen["status"], seen["method"], seen["currency"]) == (
        order["number"], "ready_for_pickup", "pickup", "EUR"
    )  # fmt: skip
    assert (seen["subtotal"], seen["total"]) == (2500, 2500)
    assert seen["lines"] == [
        {
            "sku": "A",
            "name": "Garden hose",
            "quantity": 2,
            "unit_price": 1250,
            "quantity_cancelled": 0,
            "quantity_fulfilled": 0,
            "quantity_returned": 0,
        }
    ]
    store = {"code": "S1", "name": "Store S1", "city": "Berlin", "country": "DE"}
    assert seen["pickup_store"] == store
    [pickup] = seen["fulfillments"]
    full_pickup = full["fulfillment_orders"][0]
    assert (pickup["method"], pickup["status"], pickup["store"]) == ("pickup", "ready_for_pickup", store)
    assert pickup["pickup_deadline"] == full_pickup["pickup_deadline"] is not None
    assert pickup["ready_at"] == full_pickup["ready_at"]
    assert pickup["expected_ready_at"] == full_pickup["expected_ready_at"]
    assert pickup["lines"] == [{"sku": "A", "quantity": 2, "quantity_handed_over": 0}]
    # The same sentence every channel shows, its store by town only.
    status = seen["customer_status"]
    assert (status["code"], status["text"]) == (full["customer_status"]["code"], full["customer_status"]["text"])
    assert {k: status["location"][k] for k in ("code", "name", "city", "country")} == store
    # What it never shows: identities, street, payment, pickup code, internal ids.
    text = r.text
    for secret in ("ann@example.com", "4155550100", "Ann Example", "5 Shop Lane", "10115", code, "pi_",
                   order["id"], order["lines"][0]["id"], full_pickup["id"], order["channel_order_ref"]):  # fmt: skip
        assert secret not in text, secret
    forbidden = {"id", "order_id", "customer", "email", "phone", "name_on_card", "payment", "payments",
                 "line1", "line2", "postal_code", "lat", "lon", "pickup_code", "pickup_locked_until",
                 "channel", "channel_order_ref", "version", "allowed_actions", "address"}  # fmt: skip
    assert not keys_of(seen) & forbidden, keys_of(seen) & forbidden


async def test_the_shipping_view_shows_the_town_carrier_and_tracking_number_only(paid_guest):
    shop = paid_guest
    await shop.location("W1", lat=52.5, lon=13.4, capabilities=("ship",), address=STORE_ADDRESS)
    await shop.product("A")
    await shop.stock("W1", "A", 5)
    body = shop.order_body([("A", 1)], method="ship", address=SHIP_TO)
    order = await place(shop, {**body, "payment": CARD})
    staff = await shop.staff("W1")
    fo = order["fulfillment_orders"][0]
    for action, data in [
        ("accept", None),
        ("start-picking", None),
        ("pick", {"lines": [{"line_id": fo["lines"][0]["id"], "quantity": 1}]}),
        ("pack", None),
        ("ship", {"carrier": "DHL", "tracking_number": "JD0001"}),
    ]:
        await act(shop, staff, fo["id"], action, data)

    r = await tracked(shop, await token_for(shop, order["number"], email="ann@example.com"))
    assert r.status_code == 200, r.text
    seen = r.json()
    assert seen["ship_to"] == {"city": "Berlin", "country": "DE"}
    assert seen["pickup_store"] is None
    [parcel] = seen["fulfillments"]
    assert (parcel["method"], parcel["status"], parcel["carrier"], parcel["tracking_number"]) == (
        "ship", "shipped", "DHL", "JD0001"
    )  # fmt: skip
    assert parcel["shipped_at"] is not None
    for secret in ("1 Main St", "10117", "Ann Example", "ann@example.com", "4155550100", "5 Shop Lane", "pi_"):
        assert secret not in r.text, secret
    assert not keys_of(seen) & {"line1", "postal_code", "lat", "lon", "name_on_card", "payment", "email"}


# --- what a token may do -------------------------------------------------------------------


async def test_a_curbside_check_in_with_the_token_is_recorded_as_the_channel_endpoint_records_it(guest, clock):
    await guest.location("S1")
    await guest.product("A")
    await guest.stock("S1", "A", 5)
    order = await place(guest, guest.order_body([("A", 1)], method="curbside"))
    token = await token_for(guest, order["number"], email="ann@example.com")
    r = await guest.client.post(
        f"/v1/public/orders/{token}/arrival", json={"parking_spot": "P7", "vehicle": "red VW Golf"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["fulfillments"][0]["arrived_at"] is not None
    assert datetime.fromisoformat(r.json()["fulfillments"][0]["arrived_at"]) == clock.now()
    full = await get_order(guest, order["id"])
    arrival = full["fulfillment_orders"][0]["arrival"]
    assert (arrival["parking_spot"], arrival["vehicle"]) == ("P7", "red VW Golf")
    [arrived] = [e for e in await events(guest, order["id"]) if e["type"] == "order.customer_arrived"]
    assert arrived["actor"].startswith("customer")
    # An unknown field is refused as on the channel endpoint.
    bad = await guest.client.post(f"/v1/public/orders/{token}/arrival", json={"parking_spot": "P1", "x": 1})
    assert bad.status_code == 422


async def stores_for_a_shortfall(shop: Shop) -> dict:
    await shop.location("S1", lat=NEAR[0], lon=NEAR[1])
    await shop.location("S2", lat=MID[0], lon=MID[1])
    await shop.location("S3", lat=FAR[0], lon=FAR[1])
    await shop.product("A")
    for code in ("S1", "S2", "S3"):
        await shop.stock(code, "A", 5)
    return await shop.staff("S1")


async def test_an_offered_option_is_applied_with_the_token_and_nothing_else_is(guest):
    s1 = await stores_for_a_shortfall(guest)
    order = await place(guest, guest.order_body([("A", 3)], location="S1"))
    await act(guest, s1, order["fulfillment_orders"][0]["id"], "reject", {"reason": "till broken"})
    token = await token_for(guest, order["number"], email="ann@example.com")
    waiting = (await tracked(guest, token)).json()
    assert waiting["status"] == "action_required"
    options = waiting["action_required"]["options"]
    assert [o["id"] for o in options] == ["move_pickup:S2", "move_pickup:S3", "wait_for_transfer", "go_without"]
    assert all(set(o) == {"id", "description", "expected_ready_at"} for o in options)  # no change bodies
    version = (await get_order(guest, order["id"]))["version"]

    url = f"/v1/public/orders/{token}/changes"
    not_offered = assert_problem(
        await guest.client.post(url, json={"option": "move_pickup:S1"}), 422, "invalid-request"
    )
    assert not_offered["errors"][0]["field"] == "option"
    # Only an option id: a change body of the channel endpoint is refused outright.
    raw = {"actions": [{"type": "cancel_order"}]}
    assert (await guest.client.post(url, json=raw)).status_code == 422
    assert (await get_order(guest, order["id"]))["version"] == version

    r = await guest.client.post(url, json={"option": "move_pickup:S2"})
    assert r.status_code == 200, r.text
    after = r.json()
    assert after["status"] == "received" and after["action_required"] is None
    assert after["pickup_store"]["code"] == "S2"
    full = await get_order(guest, order["id"])
    assert full["fulfillment"]["location"] == "S2" and full["lines"][0]["quantity_unsourced"] == 0
    changed = [e for e in await events(guest, order["id"]) if e["type"] == "order.changed"]
    assert changed and changed[-1]["actor"].startswith("customer")
    # Chosen once: the order offers nothing any more.
    again = assert_problem(await guest.client.post(url, json={"option": "move_pickup:S2"}), 422, "invalid-request")
    assert again["detail"] == "the order offers no changes now"


async def test_schema_documents_the_public_paths_without_an_api_key(guest):
    r = await guest.client.get("/schema/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    for path in ("/v1/public/order-lookup", "/v1/public/orders/{token}", "/v1/public/orders/{token}/arrival"):
        for operation in paths[path].values():
            assert operation.get("security") == [{}], path
