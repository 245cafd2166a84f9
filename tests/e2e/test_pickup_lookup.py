"""Issue 10, pick up anywhere: staff at store S2 find an order meant for S1 at the counter by its
number and one verifier (email, phone, pickup code), and may then read it for 15 minutes; every
failure is the same 404; lookups are rate-limited per key on the injected clock."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import event, text

from orchestrator.fulfillment import counter
from orchestrator.platform.actors import Role
from orchestrator.platform.api_keys import create_key
from tests.e2e.conftest import auth
from tests.e2e.support import assert_problem, pickup_code, to_ready

PHONE = "+1 415 555 0100"


async def world(shop) -> tuple[dict, dict, dict]:
    """S1 and S2; an order for pickup at S1 with email and phone, ready with a code. Returns
    (the order, S1's staff key, S2's staff key)."""
    await shop.location("S1", 52.52, 13.40)
    await shop.location("S2", 48.14, 11.58)
    await shop.product("A")
    await shop.stock("S1", "A", 5)
    await shop.stock("S2", "A", 5)
    s1, s2 = await shop.staff("S1"), await shop.staff("S2")
    order = await place(shop, "ann@example.com", PHONE)
    await to_ready(shop, s1, order["fulfillment_orders"][0])
    return order, s1, s2


async def place(shop, email: str, phone: str | None = None) -> dict:
    body = shop.order_body([("A", 1)], location="S1", email=email)
    if phone:
        body["customer"]["phone"] = phone
    r = await shop.place(body)
    assert r.status_code == 201, r.text
    return r.json()


async def lookup(shop, headers, number, verify=None, **extra):
    body = {"number": number, **({"verify": verify} if verify is not None else {}), **extra}
    return await shop.client.post("/v1/pickup-lookup", json=body, headers=headers)


async def other_key(shop, *locations: str) -> dict:
    async with shop.db.unit_of_work() as uow:
        token, _ = await create_key(
            uow, role=Role.STAFF, name=f"second:{uuid.uuid4()}", locations=list(locations), now=shop.clock.now()
        )
        await uow.commit()
    return auth(token)


async def test_found_by_email_phone_or_pickup_code_answers_the_order_as_get_does(shop, db):
    order, _, s2 = await world(shop)
    code = await pickup_code(db, order["fulfillment_orders"][0]["id"])
    assert (await shop.client.get(f"/v1/orders/{order['id']}", headers=s2)).status_code == 404

    number = order["number"].lower().replace("-", " ")  # as read out at the counter
    for verify in ("  ANN@Example.COM ", "(415) 555-0100", "415.555.0100", code, f" {code} "):
        r = await lookup(shop, s2, number, verify)
        assert r.status_code == 200, (verify, r.text)
        found = r.json()
        assert r.headers["etag"] == f'"{found["version"]}"'
        admin_view = (await shop.client.get(f"/v1/orders/{order['id']}", headers=shop.admin)).json()
        assert found == admin_view and found["id"] == order["id"]

    r = await shop.client.get(f"/v1/orders/{order['id']}", headers=s2)
    assert r.status_code == 200 and r.json()["id"] == order["id"]
    assert (await shop.client.get(f"/v1/orders/{order['id']}/events", headers=s2)).status_code == 200


async def test_every_failure_is_the_same_404_as_an_unknown_number(shop, db):
    order, _, s2 = await world(shop)
    code = await pickup_code(db, order["fulfillment_orders"][0]["id"])
    other = await place(shop, "bob@example.com", "+1 212 555 0199")  # S1's, not ready: no code
    wrong_code = f"{(int(code) + 1) % 10**6:06d}"
    failures = [
        (order["number"], "bob@example.com"),  # another customer's email
        (order["number"], "+1 212 555 0199"),  # another customer's phone
        (order["number"], wrong_code),
        (order["number"], None),
        (order["number"], ""),
        (order["number"], "not anything"),
        (other["number"], code),  # a real code, of another order
        (other["number"], "000000"),
        ("ZZZ-ZZZZ", "ann@example.com"),
        ("", "ann@example.com"),
    ]
    bodies = []
    for number, verify in failures:
        r = await lookup(shop, s2, number, verify)
        body = assert_problem(r, 404, "not-found")
        assert body.pop("instance") == "/v1/pickup-lookup"
        bodies.append((sorted(r.headers.items()), body))
    headers = [sorted((k, v) for k, v in h if k not in ("x-request-id", "date")) for h, _ in bodies]
    assert all(h == headers[0] for h in headers), headers
    assert all(b == bodies[0][1] for _, b in bodies), bodies
    assert (await shop.client.get(f"/v1/orders/{order['id']}", headers=s2)).status_code == 404
    async with db.unit_of_work() as uow:
        assert await uow.session.scalar(text("SELECT count(*) FROM pickup_lookup_grants")) == 0

    # A pickup locked after wrong codes at the handover: its code no longer opens the order.
    shop.clock.advance(timedelta(minutes=1))  # a new rate-limit window
    async with db.unit_of_work() as uow:
        await uow.session.execute(
            text("UPDATE fulfillment_orders SET pickup_locked_until = :t WHERE order_id = :o"),
            {"t": shop.clock.now() + timedelta(minutes=5), "o": order["id"]},
        )
        await uow.commit()
    assert_problem(await lookup(shop, s2, order["number"], code), 404, "not-found")
    assert (await lookup(shop, s2, order["number"], "ann@example.com")).status_code == 200


async def test_only_staff_keys_look_up(shop):
    order, _, _ = await world(shop)
    for headers in (await shop.channel("web"), shop.admin):
        assert_problem(await lookup(shop, headers, order["number"], "ann@example.com"), 403, "forbidden")


async def test_a_key_serving_several_stores_names_its_counter(shop, db):
    order, _, _ = await world(shop)
    await shop.location("S3", 50.0, 8.0)
    both = await shop.staff("S2", "S3")
    problem = assert_problem(await lookup(shop, both, order["number"], "ann@example.com"), 422, "invalid-request")
    assert problem["errors"][0]["field"] == "location"
    wrong = await lookup(shop, both, order["number"], "ann@example.com", location="S1")
    assert_problem(wrong, 422, "invalid-request")
    r = await lookup(shop, both, order["number"], "ann@example.com", location="S3")
    assert r.status_code == 200, r.text
    async with db.unit_of_work() as uow:
        rows = (
            await uow.session.execute(
                text("SELECT location_code, order_id, granted_at, expires_at FROM pickup_lookup_grants")
            )
        ).all()
    assert [(c, str(o)) for c, o, _, _ in rows] == [("S3", order["id"])]
    assert rows[0][2] == shop.clock.now() and rows[0][3] - rows[0][2] == timedelta(minutes=15)


async def test_lookups_are_limited_per_key_on_the_injected_clock(shop):
    order, _, s2 = await world(shop)
    for _ in range(10):
        assert (await lookup(shop, s2, order["number"], "nobody@example.com")).status_code == 404
    r = await lookup(shop, s2, order["number"], "ann@example.com")  # right, but one too many
    assert_problem(r, 429, "too-many-requests")
    wait = int(r.headers["retry-after"])
    assert 1 <= wait <= 60
    assert (await lookup(shop, await other_key(shop, "S2"), order["number"], "ann@example.com")).status_code == 200

    shop.clock.advance(timedelta(seconds=wait - 1) if wait > 1 else timedelta(0))
    if wait > 1:
        assert (await lookup(shop, s2, order["number"], "ann@example.com")).status_code == 429
    shop.clock.advance(timedelta(seconds=1))
    assert (await lookup(shop, s2, order["number"], "ann@example.com")).status_code == 200


async def test_the_grant_opens_the_order_to_that_key_for_15_minutes_and_nothing_else(shop, db):
    order, s1, s2 = await world(shop)
    fo = order["fulfillment_orders"][0]
    sibling = await place(shop, "ann@example.com", PHONE)  # the same customer's other S1 order
    assert (await lookup(shop, s2, order["number"], "ann@example.com")).status_code == 200

    assert (await shop.client.get(f"/v1/orders/{order['id']}", headers=s2)).status_code == 200
    hidden = [
        f"/v1/orders/{sibling['id']}",
        f"/v1/orders/{sibling['id']}/events",
        f"/v1/fulfillments/{fo['id']}",
    ]
    for path in hidden:
        assert_problem(await shop.client.get(path, headers=s2), 404, "not-found")
    queue = await shop.client.get("/v1/locations/S1/fulfillments", headers=s2)
    assert queue.status_code in (403, 404), queue.text
    listed = (await shop.client.get("/v1/orders", headers=s2)).json()["items"]
    assert listed == []
    # Another key of the same store did not look it up.
    assert (await shop.client.get(f"/v1/orders/{order['id']}", headers=await other_key(shop, "S2"))).status_code == 404

    shop.clock.advance(timedelta(minutes=15) - timedelta(microseconds=1))
    assert (await shop.client.get(f"/v1/orders/{order['id']}", headers=s2)).status_code == 200
    assert (await shop.client.get(f"/v1/orders/{order['id']}/events", headers=s2)).status_code == 200
    shop.clock.advance(timedelta(microseconds=1))
    assert_problem(await shop.client.get(f"/v1/orders/{order['id']}", headers=s2), 404, "not-found")
    assert_problem(await shop.client.get(f"/v1/orders/{order['id']}/events", headers=s2), 404, "not-found")
    # The store's own staff are unaffected throughout.
    assert (await shop.client.get(f"/v1/orders/{order['id']}", headers=s1)).status_code == 200


async def test_an_unknown_number_costs_the_same_work_as_a_wrong_verifier(shop, db, monkeypatch):
    """No early return that timing could tell apart: the same statements, and a pickup code is
    derived and compared even when there is no order (or no ready pickup) to compare with."""
    order, _, s2 = await world(shop)
    statements: list[str] = []
    derived: list[object] = []
    real_matches = counter.code_matches

    def compared(secret, pickup_id, issue, offered):
        derived.append(pickup_id)
        return real_matches(secret, pickup_id, issue, offered)

    def seen(conn, cursor, statement, *args):
        statements.append(statement.split()[0])

    monkeypatch.setattr(counter, "code_matches", compared)
    event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        work = []
        for number in (order["number"], "ZZZ-ZZZZ"):
            statements.clear()
            derived.clear()
            assert (await lookup(shop, s2, number, "123456")).status_code == 404
            work.append((list(statements), len(derived)))
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", seen)
    assert work[0] == work[1], work
    assert work[0][1] == 1 and work[0][0].count("SELECT") >= 2, work
