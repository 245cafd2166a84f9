"""Issue #12, customer notifications: rendered from templates, routed to the customer's channel
(preferred, else last used, else what they can be reached on), the pickup code in the message
sent and nowhere after it — no table, no log line."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import text

from tests.e2e.support import act
from tests.e2e.test_webhooks import hooks  # noqa: F401 - the fixture
from tests.e2e.webhook_receiver import receiving


async def notification_subscription(hooks, kind: str, url: str) -> dict:  # noqa: F811
    r = await hooks.shop.client.post(
        "/v1/webhook-subscriptions", json={"kind": kind, "url": url}, headers=hooks.shop.admin
    )
    assert r.status_code == 201, r.text
    return r.json()


async def ready_pickup(hooks, **customer) -> tuple[dict, dict, str]:  # noqa: F811
    """A pickup order made ready by the store's staff; (order, staff key, pickup code)."""
    shop = hooks.shop
    body = shop.order_body([("A", 1)], method="pickup", location="S1")
    body["customer"] = {"name": "Ada", **customer}
    order = (await shop.place(body)).json()
    fo = order["fulfillment_orders"][0]
    staff = await shop.staff("S1")
    await act(shop, staff, fo["id"], "accept")
    await act(shop, staff, fo["id"], "start-picking")
    await act(shop, staff, fo["id"], "pick", {"lines": [{"line_id": fo["lines"][0]["id"], "quantity": 1}]})
    await act(shop, staff, fo["id"], "ready")
    code = (await shop.client.post(f"/v1/fulfillments/{fo['id']}/resend-code", headers=await shop.channel())).json()
    return order, staff, code["code"]


async def tables_holding(db, needle: str) -> list[str]:
    """Every table row whose text holds ``needle`` as a number of its own (not inside a longer
    number or a timestamp's fraction of a second)."""
    found = []
    async with db.unit_of_work() as uow:
        names = (await uow.session.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))).all()
        for (name,) in names:
            rows = await uow.session.execute(text(f'SELECT t::text FROM "{name}" t'))  # noqa: S608 - catalogue names
            pattern = re.compile(rf"(?<![0-9.]){needle}(?![0-9])")
            found += [f"{name}: {row[0][:200]}" for row in rows if pattern.search(row[0])]
    return found


async def test_ready_for_pickup_reaches_the_customer_by_email_with_the_code_and_nothing_keeps_it(hooks, capfd):  # noqa: F811
    async with receiving() as email, receiving() as sms:
        await notification_subscription(hooks, "email", email.url)
        await notification_subscription(hooks, "sms", sms.url)
        order, _, code = await ready_pickup(hooks, email="ada@example.com", phone="+14155550100")
        await hooks.relay()
        await hooks.send()
    by_template = {}
    for got in email.received:
        body = hooks_body(got)
        by_template[body["data"]["template"]] = body
    assert set(by_template) == {"confirmed", "ready_for_pickup"}
    ready = by_template["ready_for_pickup"]["data"]
    assert ready["to"] == "ada@example.com" and ready["order_number"] == order["number"]
    assert code in ready["text"] and code in ready["html"]
    assert "Store S1" in ready["subject"] and "Hello Ada" in ready["text"]
    assert re.search(r"until \w{3} \d+ \w{3}, \d\d:\d\d", ready["text"])
    assert "Order " + order["number"] + " confirmed" == by_template["confirmed"]["data"]["subject"]
    assert sms.received == []  # one channel per notification: the customer's first reachable one

    # Delivered: the code is in no table, no log line; the order's notifications show the copy without it.
    assert await tables_holding(hooks.shop.db, code) == []
    out, err = capfd.readouterr()
    assert code not in out and code not in err
    listed = (await hooks.shop.client.get(f"/v1/orders/{order['id']}/notifications", headers=hooks.shop.admin)).json()
    assert [(n["template"], n["channel"], n["status"]) for n in listed] == [
        ("confirmed", "email", "delivered"),
        ("ready_for_pickup", "email", "delivered"),
    ]
    assert code not in str(listed) and "••••••" in listed[1]["text"]
    assert datetime.fromisoformat(listed[1]["sent_at"])


def hooks_body(received) -> dict:
    import json

    return json.loads(received.body)


async def test_the_preferred_contact_wins_and_sms_gets_the_short_text(hooks):  # noqa: F811
    async with receiving() as email, receiving() as sms:
        await notification_subscription(hooks, "email", email.url)
        await notification_subscription(hooks, "sms", sms.url)
        shop = hooks.shop
        body = shop.order_body(email="bo@example.com")
        body["customer"]["phone"] = "+14155550101"
        first = (await shop.place(body)).json()
        await hooks.relay()
        await hooks.send()
        async with shop.db.unit_of_work() as uow:
            await uow.session.execute(
                text("UPDATE customers SET preferred_channel = 'sms', preferred_identity = phone WHERE id = :id"),
                {"id": first["customer"]["id"]},
            )
            await uow.commit()
        order, _, code = await ready_pickup(hooks, email="bo@example.com", phone="+14155550101")
        await hooks.relay()
        await hooks.send()
    texts = [hooks_body(r)["data"] for r in sms.received]
    ready = next(t for t in texts if t["template"] == "ready_for_pickup")
    assert ready["to"] == "+14155550101" and code in ready["text"] and set(ready) >= {"text"} and "html" not in ready
    assert len(ready["text"]) <= 160
    assert [hooks_body(r)["data"]["template"] for r in email.received] == ["confirmed"]  # before the preference


async def test_a_customer_who_cannot_be_reached_keeps_no_code_either(hooks):  # noqa: F811
    async with receiving() as sms:
        await notification_subscription(hooks, "sms", sms.url)
        order, _, code = await ready_pickup(hooks, email="cy@example.com")  # no phone, no email service
        await hooks.relay()
        await hooks.send()
    assert sms.received == []
    listed = (await hooks.shop.client.get(f"/v1/orders/{order['id']}/notifications", headers=hooks.shop.admin)).json()
    assert {n["status"] for n in listed} == {"unroutable"} and all(n["channel"] is None for n in listed)
    assert await tables_holding(hooks.shop.db, code) == []


async def test_a_notification_that_dies_loses_its_code(hooks):  # noqa: F811
    async with receiving([503]) as email:
        await notification_subscription(hooks, "email", email.url)
        order, _, code = await ready_pickup(hooks, email="di@example.com")
        await hooks.relay()
        await hooks.send()
        assert await tables_holding(hooks.shop.db, code) != []  # still to send: the body keeps it
        for _ in range(200):
            pending = [d for d in await pending_deliveries(hooks) if d["status"] != "dead"]
            if not pending:
                break
            hooks.shop.clock.advance(
                min(datetime.fromisoformat(d["next_attempt_at"]) for d in pending) - hooks.shop.clock.now()
            )
            await hooks.send()
    assert await tables_holding(hooks.shop.db, code) == []
    listed = (await hooks.shop.client.get(f"/v1/orders/{order['id']}/notifications", headers=hooks.shop.admin)).json()
    assert {n["status"] for n in listed} == {"dead"}


async def pending_deliveries(hooks) -> list[dict]:  # noqa: F811
    r = await hooks.shop.client.get("/v1/webhook-deliveries", headers=hooks.shop.admin)
    return r.json()["items"]


async def test_only_an_admin_subscribes_a_messaging_service(hooks):  # noqa: F811
    web = await hooks.shop.channel("web")
    r = await hooks.shop.client.post(
        "/v1/webhook-subscriptions", json={"kind": "email", "url": "https://mail.example/x"}, headers=web
    )
    assert r.status_code == 403
    r = await hooks.shop.client.post(
        "/v1/webhook-subscriptions",
        json={"kind": "email", "url": "https://mail.example/x", "event_types": ["order.*"]},
        headers=hooks.shop.admin,
    )
    assert r.status_code == 422


async def test_a_fulfillment_past_its_expected_time_is_announced_delayed_once(hooks):  # noqa: F811
    from orchestrator.orders import delays

    shop = hooks.shop
    async with receiving() as email:
        await notification_subscription(hooks, "email", email.url)
        order = (await shop.place(shop.order_body([("A", 1)], method="pickup", location="S1"))).json()
        fo = order["fulfillment_orders"][0]
        await act(shop, await shop.staff("S1"), fo["id"], "accept")
        assert await delays.sweep(shop.db, shop.clock) == 0  # not late yet
        shop.clock.advance(datetime.fromisoformat(fo["expected_ready_at"]) - shop.clock.now() + timedelta(minutes=1))
        assert await delays.sweep(shop.db, shop.clock) == 1
        assert await delays.sweep(shop.db, shop.clock) == 0  # once per promised time
        await hooks.relay()
        await hooks.send()
    events = (await shop.client.get(f"/v1/orders/{order['id']}/events", headers=shop.admin)).json()
    assert [e["type"] for e in events].count("fulfillment.delayed") == 1
    now = (await shop.client.get(f"/v1/orders/{order['id']}", headers=shop.admin)).json()
    assert now["customer_status"]["code"] == "delayed"
    templates = [hooks_body(r)["data"]["template"] for r in email.received]
    assert sorted(templates) == ["confirmed", "delayed"]  # sent in parallel: no order between them
    delayed = next(hooks_body(r)["data"] for r in email.received if hooks_body(r)["data"]["template"] == "delayed")
    assert "delayed" in delayed["subject"]
