"""Issue #7 items 5 and 11: an Idempotency-Key lives in its channel's (or key's) own space, never
in a display name's; a 404 for "not yours" reads exactly like "does not exist"."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from orchestrator.platform.actors import Role
from orchestrator.platform.api_keys import create_key
from tests.e2e.conftest import auth
from tests.e2e.support import assert_problem


async def key_named(shop, name: str, *, role: Role, channel: str | None = None) -> dict[str, str]:
    async with shop.db.unit_of_work() as uow:
        token, _ = await create_key(uow, role=role, name=name, channel=channel, now=shop.clock.now())
        await uow.commit()
    return auth(token)


# --- item 5: idempotency scope ----------------------------------------------------------------


async def test_channel_keys_sharing_a_display_name_do_not_share_idempotency_keys(two_stores):
    shop = two_stores
    web = await key_named(shop, "channel:cli", role=Role.CHANNEL, channel="web")
    amazon = await key_named(shop, "channel:cli", role=Role.CHANNEL, channel="amazon")
    web_body = shop.order_body([("A", 1)], ref="same-ref", email="web@example.com")
    amazon_body = shop.order_body([("A", 1)], ref="same-ref", email="amazon@example.com")

    first = await shop.client.post("/v1/orders", json=web_body, headers={**web, "Idempotency-Key": "k1"})
    second = await shop.client.post("/v1/orders", json=amazon_body, headers={**amazon, "Idempotency-Key": "k1"})

    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    assert "idempotent-replayed" not in second.headers
    assert first.json()["id"] != second.json()["id"]
    assert second.json()["channel"] == "amazon"
    assert second.json()["customer"]["email"] == "amazon@example.com"


async def test_keys_of_one_channel_share_its_idempotency_space(two_stores):
    shop = two_stores
    one = await key_named(shop, "web-1", role=Role.CHANNEL, channel="web")
    two = await key_named(shop, "web-2", role=Role.CHANNEL, channel="web")
    body = shop.order_body([("A", 1)])
    first = await shop.client.post("/v1/orders", json=body, headers={**one, "Idempotency-Key": "k2"})
    again = await shop.client.post("/v1/orders", json=body, headers={**two, "Idempotency-Key": "k2"})
    assert first.status_code == 201, first.text
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json()["id"] == first.json()["id"]


async def test_admin_keys_sharing_a_display_name_do_not_share_idempotency_keys(two_stores):
    shop = two_stores
    one = await key_named(shop, "ops", role=Role.ADMIN)
    two = await key_named(shop, "ops", role=Role.ADMIN)
    first = await shop.client.post(
        "/v1/orders",
        json={**shop.order_body([("A", 1)], ref="r-1"), "channel": "pos"},
        headers={**one, "Idempotency-Key": "k3"},
    )
    second = await shop.client.post(
        "/v1/orders",
        json={**shop.order_body([("A", 1)], ref="r-2"), "channel": "pos"},
        headers={**two, "Idempotency-Key": "k3"},
    )
    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    assert first.json()["id"] != second.json()["id"]


# --- item 11: one 404 for "not yours" and "does not exist" ------------------------------------


def made_up_number(real: str) -> str:
    """A number in the same format as ``real`` that no order has."""
    return "".join("Z" if ch.isalnum() else ch for ch in real)


async def test_not_yours_404_is_byte_identical_to_does_not_exist(two_stores):
    shop = two_stores
    theirs = (await shop.place(shop.order_body([("A", 1)], location="S2"))).json()
    fo = theirs["fulfillment_orders"][0]
    s1 = await shop.staff("S1")
    made_up_order, made_up_fo = uuid.uuid4(), uuid.uuid4()

    pairs = [
        (f"/v1/orders/{theirs['id']}", f"/v1/orders/{made_up_order}"),
        (f"/v1/orders/{theirs['id']}/events", f"/v1/orders/{made_up_order}/events"),
        (f"/v1/fulfillments/{fo['id']}", f"/v1/fulfillments/{made_up_fo}"),
    ]
    for existing, missing in pairs:
        # Same path, once for the real resource and once after it is gone from the key's reach.
        not_yours = await shop.client.get(existing, headers=s1)
        assert_problem(not_yours, 404, "not-found")
        assert theirs["id"] not in not_yours.json()["detail"]
        absent = await shop.client.get(missing, headers=s1)
        assert_problem(absent, 404, "not-found")
        assert not_yours.json()["detail"] == absent.json()["detail"]

    # By number: the very same path, for an order that exists elsewhere and for none at all.
    path = f"/v1/orders/by-number/{theirs['number']}"
    not_yours = await shop.client.get(path, headers=s1)
    assert_problem(not_yours, 404, "not-found")
    assert theirs["id"] not in not_yours.json()["detail"]
    made_up = made_up_number(theirs["number"])
    absent = await shop.client.get(f"/v1/orders/by-number/{made_up}", headers=s1)
    assert_problem(absent, 404, "not-found")
    assert made_up not in absent.json()["detail"]
    assert not_yours.json()["detail"] == absent.json()["detail"]


async def test_same_path_404_bodies_are_identical_whether_hidden_or_absent(two_stores, db):
    """Byte for byte, same path: first the resource exists at another store, then it is gone."""
    shop = two_stores
    theirs = (await shop.place(shop.order_body([("A", 1)], location="S2"))).json()
    fo = theirs["fulfillment_orders"][0]
    s1 = await shop.staff("S1")
    paths = [
        ("GET", f"/v1/orders/{theirs['id']}"),
        ("GET", f"/v1/orders/{theirs['id']}/events"),
        ("GET", f"/v1/orders/by-number/{theirs['number']}"),
        ("GET", f"/v1/fulfillments/{fo['id']}"),
        ("POST", f"/v1/fulfillments/{fo['id']}/accept"),
        ("GET", "/v1/locations/S2/fulfillments"),
    ]
    hidden = {p: await shop.client.request(m, p, headers=s1) for m, p in paths}

    # The resources disappear for real: now they "do not exist".
    async with db.unit_of_work() as uow:
        s = uow.session
        await s.execute(text("TRUNCATE reservations, fulfillment_order_lines, fulfillment_orders CASCADE"))
        await s.execute(text("TRUNCATE order_events, sourcing_decisions, order_lines, orders CASCADE"))
        await s.execute(text("TRUNCATE outbox, idempotency_keys, inventory_movements, stock_levels CASCADE"))
        await s.execute(text("DELETE FROM locations WHERE code = 'S2'"))
        await uow.commit()
    for method, path in paths:
        absent = await shop.client.request(method, path, headers=s1)
        assert_problem(absent, 404, "not-found")
        assert hidden[path].status_code == 404, (path, hidden[path].text)
        assert hidden[path].content == absent.content, path


async def test_a_role_that_never_may_is_403_naming_it_not_404(two_stores):
    shop = two_stores
    mine = (await shop.place(shop.order_body([("A", 1)], location="S1"))).json()
    staff = await shop.staff("S1")
    r = await shop.client.post(f"/v1/orders/{mine['id']}/cancel", headers=staff)
    assert "staff" in assert_problem(r, 403, "forbidden")["detail"]
    channel = await shop.channel()
    r = await shop.client.post(f"/v1/fulfillments/{mine['fulfillment_orders'][0]['id']}/accept", headers=channel)
    assert "channel" in assert_problem(r, 403, "forbidden")["detail"]
