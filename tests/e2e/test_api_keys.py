"""Issue #11, "Who may see a customer": scoped keys and key management over the API — the secret
shown once and never listed, last use recorded, revocation at once, rotation with an overlap read
on the injected clock, scopes per role, a marketplace key kept to its own channel."""

from __future__ import annotations

import uuid
from datetime import timedelta

from tests.e2e.conftest import auth
from tests.e2e.support import assert_problem


async def make_key(shop, **body) -> dict:
    r = await shop.client.post("/v1/api-keys", json=body, headers=shop.admin)
    assert r.status_code == 201, r.text
    return r.json()


async def test_a_key_made_over_the_api_works_and_its_secret_is_never_listed(shop):
    made = await make_key(shop, name="web shop", role="channel", channel="web")
    assert made["secret"].startswith("oo_c_") and made["prefix"] == made["secret"][:10]
    assert set(made["scopes"]) == {
        "orders:read",
        "orders:write",
        "orders:read:all-channels",
        "customers:read",
        "customers:write",
    }
    assert made["last_used_at"] is None
    assert (await shop.client.get("/v1/orders", headers=auth(made["secret"]))).status_code == 200

    listed = await shop.client.get("/v1/api-keys", headers=shop.admin)
    assert listed.status_code == 200
    assert made["secret"] not in listed.text and "secret_digest" not in listed.text
    (mine,) = [k for k in listed.json()["items"] if k["id"] == made["id"]]
    assert "secret" not in mine
    assert mine["last_used_at"] is not None  # the GET above


async def test_roles_get_their_default_scopes_and_only_what_they_may_hold(shop):
    await shop.location("S1")
    market = await make_key(shop, name="shopify", role="channel", channel="marketplace:shopify")
    assert set(market["scopes"]) == {"orders:read", "orders:write"}
    staff = await make_key(shop, name="S1 tablet", role="staff", locations=["S1"])
    assert set(staff["scopes"]) == {"orders:read", "orders:write", "fulfillment", "inventory:write"}
    admin = await make_key(shop, name="ops", role="admin", scopes=["orders:read"])
    assert "admin" in admin["scopes"]  # an admin key holds every scope

    refused = await shop.client.post(
        "/v1/api-keys",
        json={"name": "greedy", "role": "channel", "channel": "amazon", "scopes": ["orders:read:all-channels"]},
        headers=shop.admin,
    )
    assert "orders:read:all-channels" in assert_problem(refused, 422, "invalid-request")["detail"]
    unknown = await shop.client.post(
        "/v1/api-keys", json={"name": "x", "role": "staff", "locations": ["NOPE"]}, headers=shop.admin
    )
    assert unknown.status_code == 404, unknown.text
    bad_scope = await shop.client.post(
        "/v1/api-keys", json={"name": "x", "role": "channel", "channel": "web", "scopes": ["root"]}, headers=shop.admin
    )
    assert bad_scope.status_code in (400, 422), bad_scope.text


async def test_a_key_without_a_scope_is_403_naming_it(store):
    shop = store
    reader = await make_key(shop, name="reporting", role="channel", channel="web", scopes=["orders:read"])
    r = await shop.place(shop.order_body(), headers=auth(reader["secret"]))
    assert "orders:write" in assert_problem(r, 403, "forbidden")["detail"]
    assert (await shop.client.get("/v1/orders", headers=auth(reader["secret"]))).status_code == 200
    channel = await shop.channel("web")
    r = await shop.client.get("/v1/api-keys", headers=channel)
    assert "admin" in assert_problem(r, 403, "forbidden")["detail"]


async def test_a_marketplace_key_reads_and_writes_only_its_own_channel(store):
    shop = store
    web = (await shop.place(shop.order_body(email="w@example.com"), headers=await shop.channel("web"))).json()
    amazon_key = await shop.channel("marketplace:amazon")
    own = (await shop.place(shop.order_body(email="a@example.com"), headers=amazon_key)).json()

    listed = (await shop.client.get("/v1/orders", headers=amazon_key)).json()
    assert [o["id"] for o in listed["items"]] == [own["id"]]
    unknown = await shop.client.get(f"/v1/orders/{uuid.uuid4()}", headers=amazon_key)
    other = await shop.client.get(f"/v1/orders/{web['id']}", headers=amazon_key)
    assert other.status_code == unknown.status_code == 404
    assert {k: v for k, v in other.json().items() if k != "instance"} == {
        k: v for k, v in unknown.json().items() if k != "instance"
    }
    by_number = await shop.client.get(f"/v1/orders/by-number/{web['number']}", headers=amazon_key)
    assert by_number.status_code == 404
    for path in ("events", "payments", "stream"):
        assert (await shop.client.get(f"/v1/orders/{web['id']}/{path}", headers=amazon_key)).status_code == 404
    change = await shop.client.post(
        f"/v1/orders/{web['id']}/changes",
        json={"actions": [{"type": "cancel_order"}]},
        headers={**amazon_key, "If-Match": f'"{web["version"]}"'},
    )
    assert change.status_code == 404, change.text
    # The app (an owned channel) reads and changes the web order.
    app_key = await shop.channel("app")
    assert (await shop.client.get(f"/v1/orders/{web['id']}", headers=app_key)).status_code == 200
    assert {o["id"] for o in (await shop.client.get("/v1/orders", headers=app_key)).json()["items"]} == {
        web["id"],
        own["id"],
    }


async def test_revoking_stops_a_key_at_once(shop):
    made = await make_key(shop, name="old pos", role="channel", channel="pos")
    assert (await shop.client.get("/v1/orders", headers=auth(made["secret"]))).status_code == 200
    r = await shop.client.post(f"/v1/api-keys/{made['id']}/revoke", headers=shop.admin)
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    assert (await shop.client.get("/v1/orders", headers=auth(made["secret"]))).status_code == 401
    again = await shop.client.post(f"/v1/api-keys/{made['id']}/revoke", headers=shop.admin)
    assert again.json()["revoked_at"] == r.json()["revoked_at"]
    listed = (await shop.client.get("/v1/api-keys", headers=shop.admin)).json()["items"]
    assert made["id"] not in {k["id"] for k in listed}
    everything = (await shop.client.get("/v1/api-keys?include_revoked=true", headers=shop.admin)).json()["items"]
    assert made["id"] in {k["id"] for k in everything}
    rotate = await shop.client.post(f"/v1/api-keys/{made['id']}/rotate", json={}, headers=shop.admin)
    assert_problem(rotate, 409, "conflict")
    missing = await shop.client.post(f"/v1/api-keys/{uuid.uuid4()}/revoke", headers=shop.admin)
    assert missing.status_code == 404


async def test_a_rotated_key_keeps_its_old_secret_for_the_overlap_then_401(shop):
    made = await make_key(shop, name="app", role="channel", channel="app")
    old = auth(made["secret"])
    r = await shop.client.post(f"/v1/api-keys/{made['id']}/rotate", json={"overlap_seconds": 600}, headers=shop.admin)
    assert r.status_code == 200, r.text
    rotated = r.json()
    assert rotated["id"] == made["id"] and rotated["secret"] != made["secret"]
    assert rotated["scopes"] == made["scopes"]
    assert rotated["previous_secret_expires_at"] is not None
    new = auth(rotated["secret"])
    for headers in (old, new):
        assert (await shop.client.get("/v1/orders", headers=headers)).status_code == 200
    shop.clock.advance(timedelta(seconds=599))
    assert (await shop.client.get("/v1/orders", headers=old)).status_code == 200
    shop.clock.advance(timedelta(seconds=1))
    assert (await shop.client.get("/v1/orders", headers=old)).status_code == 401
    assert (await shop.client.get("/v1/orders", headers=new)).status_code == 200
    listed = (await shop.client.get("/v1/api-keys", headers=shop.admin)).json()["items"]
    (mine,) = [k for k in listed if k["id"] == made["id"]]
    assert mine["previous_secret_expires_at"] is None  # the overlap is over


async def test_rotating_without_an_overlap_retires_the_old_secret_at_once(shop):
    made = await make_key(shop, name="kiosk", role="channel", channel="kiosk")
    r = await shop.client.post(f"/v1/api-keys/{made['id']}/rotate", json={}, headers=shop.admin)
    assert (await shop.client.get("/v1/orders", headers=auth(made["secret"]))).status_code == 401
    assert (await shop.client.get("/v1/orders", headers=auth(r.json()["secret"]))).status_code == 200
    too_long = await shop.client.post(
        f"/v1/api-keys/{made['id']}/rotate", json={"overlap_seconds": 10**9}, headers=shop.admin
    )
    assert too_long.status_code in (400, 422)
