"""One customer across channels: a web order with an email, an app order with a phone and a store
order with both are one person; merging them keeps every order and its history, and the
merged-away id points to the survivor."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.app import create_app
from tests.e2e.conftest import Shop, serving, settings_for
from tests.e2e.support import assert_problem, fields_of
from tests.e2e.test_public_tracking import guest  # noqa: F401 - the fixture

pytestmark = pytest.mark.usefixtures("two_stores")

EMAIL = "ann@example.com"
PHONE = "+14155550100"


def body_for(shop: Shop, **customer: str) -> dict:
    body = shop.order_body()
    body["customer"] = {"name": "Ann", **customer}
    return body


async def placed(shop: Shop, channel: str, **customer: str) -> dict:
    shop.clock.advance(timedelta(seconds=1))
    r = await shop.place(body_for(shop, **customer), headers=await shop.channel(channel))
    assert r.status_code == 201, r.text
    return r.json()


async def customer(shop: Shop, customer_id: str, headers: dict | None = None) -> dict:
    r = await shop.client.get(f"/v1/customers/{customer_id}", headers=headers or shop.admin)
    assert r.status_code == 200, r.text
    return r.json()


async def timeline_of(shop: Shop, customer_id: str, headers: dict | None = None) -> list[dict]:
    r = await shop.client.get(f"/v1/customers/{customer_id}/timeline?limit=200", headers=headers or shop.admin)
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def three_channels(shop: Shop) -> tuple[dict, dict, dict]:
    web = await placed(shop, "web", email=EMAIL)
    app = await placed(shop, "app", phone="(415) 555-0100")
    pos = await placed(shop, "pos", email=EMAIL, phone=PHONE)
    return web, app, pos


async def test_web_app_and_store_orders_become_one_customer_after_the_suggested_merge(shop):
    web, app, pos = await three_channels(shop)
    first, second = web["customer"]["id"], app["customer"]["id"]
    assert first != second  # an email and a phone alone: two customers
    assert pos["customer"]["id"] == first  # the email's owner first

    r = await shop.client.get(f"/v1/customers/{first}/merge-suggestions", headers=await shop.channel("web"))
    assert r.status_code == 200, r.text
    [suggestion] = r.json()["items"]
    assert suggestion["customer_id"] == second
    assert suggestion["order_id"] == pos["id"]
    assert suggestion["identities"] == [{"kind": "phone", "value": PHONE}]
    other_side = await shop.client.get(f"/v1/customers/{second}/merge-suggestions", headers=shop.admin)
    assert [s["customer_id"] for s in other_side.json()["items"]] == [first]
    # The store order did not take the phone another customer owns.
    assert (await customer(shop, first))["phone"] is None

    # What the merged-away customer had besides orders comes along: an interaction, a preferred contact.
    app_key = await shop.channel("app")
    said = {"kind": "phone", "channel": "call-centre", "summary": "Called about the app order", "order_id": app["id"]}
    assert (
        await shop.client.post(f"/v1/customers/{second}/interactions", json=said, headers=app_key)
    ).status_code == 201
    prefer = {"preferred_contact": {"channel": "sms", "identity": PHONE}}
    assert (await shop.client.patch(f"/v1/customers/{second}", json=prefer, headers=app_key)).status_code == 200

    r = await shop.client.post(
        "/v1/customers/merge", json={"survivor_id": first, "merged_id": second}, headers=shop.admin
    )
    assert r.status_code == 200, r.text
    merged = r.json()
    assert merged["id"] == first
    assert {o["id"] for o in merged["orders"]} == {web["id"], app["id"], pos["id"]}
    # Open orders first, then the newest: all three are open here.
    assert [o["id"] for o in merged["orders"]] == [pos["id"], app["id"], web["id"]]
    assert all(o["customer_status"]["code"] and o["customer_status"]["text"] for o in merged["orders"])
    assert merged["email"] == EMAIL and merged["phone"] == PHONE  # the phone came with the merge
    assert {(i["kind"], i["value"]) for i in merged["identities"]} == {("email", EMAIL), ("phone", PHONE)}
    assert merged["last_channel"] == "pos"
    assert merged["preferred_contact"] == {"channel": "sms", "identity": PHONE}  # the survivor had none
    assert (await shop.client.get(f"/v1/customers/{first}/merge-suggestions", headers=shop.admin)).json() == {
        "items": []
    }

    # History complete: the events of all three orders, from every channel.
    events = [i for i in await timeline_of(shop, first) if i["type"] == "order_event"]
    assert {e["order_id"] for e in events} == {web["id"], app["id"], pos["id"]}
    assert {e["channel"] for e in events} == {"web", "app", "pos"}
    assert {e["order_number"] for e in events} == {web["number"], app["number"], pos["number"]}
    assert [i["summary"] for i in await timeline_of(shop, first) if i["type"] == "interaction"] == [said["summary"]]

    # The merged-away id points to the survivor, on every path, method kept.
    gone = await shop.client.get(f"/v1/customers/{second}", headers=shop.admin)
    assert gone.status_code == 308
    assert gone.headers["location"] == f"/v1/customers/{first}"
    assert gone.json()["merged_into"] == first
    sub = await shop.client.get(f"/v1/customers/{second}/timeline?limit=5", headers=shop.admin)
    assert sub.status_code == 308
    assert sub.headers["location"] == f"/v1/customers/{first}/timeline?limit=5"
    note = {"kind": "chat", "channel": "agent", "summary": "asked where the order is"}
    post = await shop.client.post(f"/v1/customers/{second}/interactions", json=note, headers=shop.admin)
    assert post.status_code == 308 and post.headers["location"] == f"/v1/customers/{first}/interactions"

    # The order views name the survivor now.
    r = await shop.client.get(f"/v1/orders/{app['id']}", headers=shop.admin)
    assert r.json()["customer"]["id"] == first


async def test_merging_is_idempotent_and_refuses_the_other_way_round_or_itself(shop):
    web, app, _ = await three_channels(shop)
    first, second = web["customer"]["id"], app["customer"]["id"]
    merge = {"survivor_id": first, "merged_id": second}
    once = await shop.client.post("/v1/customers/merge", json=merge, headers=shop.admin)
    again = await shop.client.post("/v1/customers/merge", json=merge, headers=shop.admin)
    assert once.status_code == again.status_code == 200
    assert again.json() == once.json()
    back = await shop.client.post(
        "/v1/customers/merge", json={"survivor_id": second, "merged_id": first}, headers=shop.admin
    )
    assert_problem(back, 409, "conflict")
    itself = await shop.client.post(
        "/v1/customers/merge", json={"survivor_id": first, "merged_id": first}, headers=shop.admin
    )
    assert_problem(itself, 422, "invalid-request")
    # Only an admin merges.
    by_channel = await shop.client.post("/v1/customers/merge", json=merge, headers=await shop.channel("web"))
    assert by_channel.status_code == 403


async def test_with_auto_merge_the_store_order_merges_the_two_customers_at_intake(
    database_url, redis_url, db, redis, clock
):
    settings = settings_for(database_url, redis_url, customer_auto_merge=True)
    async with serving(create_app(settings, db=db, redis=redis, clock=clock)) as client:
        shop = Shop(client, db, clock)  # the stores of ``two_stores``, in the same database
        web, app, pos = await three_channels(shop)
        first, second = web["customer"]["id"], app["customer"]["id"]
        assert pos["customer"]["id"] == first
        assert pos["customer"]["phone"] == PHONE  # the order's view already shows the merged customer
        survivor = await customer(shop, first)
        assert {o["id"] for o in survivor["orders"]} == {web["id"], app["id"], pos["id"]}
        assert (await shop.client.get(f"/v1/customers/{first}/merge-suggestions", headers=shop.admin)).json() == {
            "items": []
        }
        gone = await shop.client.get(f"/v1/customers/{second}", headers=shop.admin)
        assert gone.status_code == 308 and gone.json()["merged_into"] == first
        events = [i for i in await timeline_of(shop, first) if i["type"] == "order_event"]
        assert {e["order_id"] for e in events} == {web["id"], app["id"], pos["id"]}


async def test_an_email_used_before_a_merge_still_finds_its_order(guest):  # noqa: F811
    shop = guest  # a client address of its own: the guest lookup's per-address limit is shared in Redis
    home = await placed(shop, "web", email=EMAIL)
    work = await placed(shop, "app", email="ann.work@example.com")
    survivor, merged = home["customer"]["id"], work["customer"]["id"]
    r = await shop.client.post(
        "/v1/customers/merge", json={"survivor_id": survivor, "merged_id": merged}, headers=shop.admin
    )
    assert r.status_code == 200 and r.json()["email"] == EMAIL  # the survivor keeps its primary email

    listed = await shop.client.get("/v1/orders?customer_email=Ann.Work@example.com", headers=shop.admin)
    assert {o["id"] for o in listed.json()["items"]} == {home["id"], work["id"]}
    lookup = await shop.client.post(
        "/v1/public/order-lookup", json={"number": work["number"], "email": "ann.work@example.com"}
    )
    assert lookup.status_code == 200, lookup.text
    # Another customer's email still does not open it.
    await placed(shop, "web", email="bob@example.com")
    wrong = await shop.client.post(
        "/v1/public/order-lookup", json={"number": work["number"], "email": "bob@example.com"}
    )
    assert wrong.status_code == 404


async def test_identities_attach_once_and_belong_to_one_customer(shop):
    ann = (await placed(shop, "web", email=EMAIL))["customer"]["id"]
    bob = (await placed(shop, "web", email="bob@example.com", phone="+14155550199"))["customer"]["id"]
    web = await shop.channel("web")
    url = f"/v1/customers/{ann}/identities"
    r = await shop.client.post(url, json={"kind": "loyalty_id", "value": " L-42 "}, headers=web)
    assert r.status_code == 201, r.text
    assert ("loyalty_id", "L-42") in {(i["kind"], i["value"]) for i in r.json()["identities"]}
    again = await shop.client.post(url, json={"kind": "loyalty_id", "value": "L-42"}, headers=web)
    assert again.status_code == 200
    phone = await shop.client.post(url, json={"kind": "phone", "value": "+1 415 555 0100"}, headers=web)
    assert phone.status_code == 201 and phone.json()["phone"] == PHONE  # a first phone becomes the primary one
    taken = await shop.client.post(url, json={"kind": "email", "value": "BOB@example.com"}, headers=web)
    assert_problem(taken, 409, "identity-taken")
    bad = await shop.client.post(url, json={"kind": "account", "value": "no-platform"}, headers=web)
    assert fields_of(assert_problem(bad, 422, "invalid-request")) == ["value"]
    bad_phone = await shop.client.post(url, json={"kind": "phone", "value": "12"}, headers=web)
    assert fields_of(assert_problem(bad_phone, 422, "invalid-request")) == ["value"]
    unknown = await shop.client.post(
        f"/v1/customers/{bob[:-4]}ffff/identities", json={"kind": "loyalty_id", "value": "X"}, headers=web
    )
    assert_problem(unknown, 404, "not-found")


async def test_a_store_order_with_only_a_loyalty_card_and_a_marketplace_account(shop):
    pos = await placed(shop, "pos", loyalty_id="CARD-7")
    card_holder = pos["customer"]["id"]
    later = await placed(shop, "pos", loyalty_id="CARD-7", email=EMAIL)
    assert later["customer"]["id"] == card_holder
    shopify = await placed(shop, "marketplace:shopify", account="Shopify:123", email=EMAIL)
    assert shopify["customer"]["id"] == card_holder
    seen = await customer(shop, card_holder, await shop.channel("web"))
    assert {(i["kind"], i["value"]) for i in seen["identities"]} == {
        ("loyalty_id", "CARD-7"),
        ("email", EMAIL),
        ("account", "shopify:123"),
    }
    assert seen["email"] == EMAIL  # filled in when the card holder's first email came
    r = await shop.client.get("/v1/customers?loyalty_id=CARD-7&account=shopify:123", headers=await shop.channel("web"))
    assert [c["id"] for c in r.json()["items"]] == [card_holder]
    nameless = await shop.place(body_for(shop), headers=await shop.channel("pos"))
    assert fields_of(assert_problem(nameless, 422, "invalid-request")) == ["customer"]


async def test_search_is_exact_needs_an_identity_and_all_must_match(shop):
    ann = (await placed(shop, "web", email=EMAIL, phone=PHONE))["customer"]["id"]
    await placed(shop, "web", email="bob@example.com")
    web = await shop.channel("web")
    assert_problem(await shop.client.get("/v1/customers", headers=web), 400, "bad-request")
    found = await shop.client.get("/v1/customers?email=ANN@example.com", headers=web)
    assert [c["id"] for c in found.json()["items"]] == [ann]
    for prefix in ("ann@example.co", "ann@", "ann"):
        r = await shop.client.get("/v1/customers", params={"email": prefix}, headers=web)
        assert r.status_code in (200, 422) and (r.status_code == 422 or r.json()["items"] == [])
    both = await shop.client.get("/v1/customers", params={"email": EMAIL, "phone": "415-555-0100"}, headers=web)
    assert [c["id"] for c in both.json()["items"]] == [ann]
    mixed = await shop.client.get("/v1/customers", params={"email": "bob@example.com", "phone": PHONE}, headers=web)
    assert mixed.json()["items"] == []


async def test_preferred_contact_names_one_of_the_customers_identities(shop):
    ann = (await placed(shop, "web", email=EMAIL, phone=PHONE))["customer"]["id"]
    web = await shop.channel("web")
    r = await shop.client.patch(
        f"/v1/customers/{ann}",
        json={"name": "Ann B", "preferred_contact": {"channel": "whatsapp", "identity": PHONE}},
        headers=web,
    )
    assert r.status_code == 200, r.text
    assert r.json()["preferred_contact"] == {"channel": "whatsapp", "identity": PHONE}
    assert r.json()["name"] == "Ann B"
    wrong_kind = await shop.client.patch(
        f"/v1/customers/{ann}", json={"preferred_contact": {"channel": "email", "identity": PHONE}}, headers=web
    )
    assert fields_of(assert_problem(wrong_kind, 422, "invalid-request")) == ["preferred_contact.identity"]
    cleared = await shop.client.patch(f"/v1/customers/{ann}", json={"preferred_contact": None}, headers=web)
    assert cleared.json()["preferred_contact"] is None and cleared.json()["name"] == "Ann B"
