"""Changing an order from another channel (``POST /v1/orders/{id}/changes``): the web places it,
the app changes it. Dry run and apply agree; the payment captures only what is left; a change of
something already picked is refused whole; If-Match and Idempotency-Key guard every change."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from tests.e2e.conftest import Shop
from tests.e2e.support import CUSTOMER, act, assert_problem, events, get_order, on_hand_reserved, to_ready
from tests.e2e.test_payments_capture import hand_over, run_jobs
from tests.integration.invariants import all_violations, lifecycle_violations
from tests.integration.lock_waits import backend_pid
from tests.integration.money_invariants import money_violations


async def paid_order(shop: Shop, lines=(("A", 3), ("B", 2))) -> dict:
    """Placed on the web: 3 × A and 2 × B at 10.00, 5.00 shipping, a card authorised for 55.00."""
    body = {**shop.order_body(list(lines), price=1000), "shipping_total": 500}
    r = await shop.place({**body, "payment": {"provider": "stripe", "payment_method": "pm_card_visa"}})
    assert r.status_code == 201, r.text
    return r.json()


async def with_b(shop: Shop) -> Shop:
    await shop.product("B")
    await shop.stock("S1", "B", 10)
    return shop


async def change(shop: Shop, order: dict, actions: list, *, version=None, key=None, dry=False, headers=None):
    h = dict(headers or await shop.channel("app"))
    if version is not False:
        h["If-Match"] = f'"{version if version is not None else order["version"]}"'
    if key is not None:
        h["Idempotency-Key"] = key
    url = f"/v1/orders/{order['id']}/changes" + ("?dry_run=true" if dry else "")
    return await shop.client.post(url, json={"actions": actions}, headers=h)


def line(order: dict, sku: str) -> str:
    return next(ln["id"] for ln in order["lines"] if ln["sku"] == sku)


async def ready_all(shop: Shop, staff: dict, fo: dict) -> dict:
    """Accept, pick what is left of every line, mark ready."""
    await act(shop, staff, fo["id"], "accept")
    await act(shop, staff, fo["id"], "start-picking")
    picks = [{"line_id": ln["id"], "quantity": ln["quantity"] - ln["quantity_cancelled"]} for ln in fo["lines"]]
    await act(shop, staff, fo["id"], "pick", {"lines": picks})
    return await act(shop, staff, fo["id"], "ready")


async def invariants(shop: Shop, stripe_api=None, *, picked: bool = False) -> None:
    """Stock (every open unit reserved, while nothing is picked) and money invariants."""
    assert await (lifecycle_violations if picked else all_violations)(shop.db) == []
    assert await money_violations(shop.db, stripe_api.ledger if stripe_api else None) == []


async def idempotency_rows(shop: Shop, key: str) -> int:
    async with shop.db.unit_of_work() as uow:
        return int(await uow.session.scalar(text("SELECT count(*) FROM idempotency_keys WHERE key = :k"), {"k": key}))


async def test_the_dry_run_answers_what_the_applied_change_then_does_and_writes_nothing(
    paid, stripe_api, stripe_test_gateway
):
    shop = await with_b(paid)
    order = await paid_order(shop)
    actions = [
        {"type": "set_quantity", "line_id": line(order, "A"), "quantity": 1},
        {"type": "cancel_line", "line_id": line(order, "B"), "quantity": 1},
    ]
    timeline = await events(shop, order["id"])
    dry = await change(shop, order, actions, key="k-dry", dry=True)
    assert dry.status_code == 200, dry.text
    preview = dry.json()
    assert preview["accepted"] and [a["accepted"] for a in preview["actions"]] == [True, True]
    assert preview["totals_after"]["subtotal"] == 2000 and preview["payment_difference"] == -3000
    # Nothing written: no version, no stock, no timeline, no key.
    assert (await get_order(shop, order["id"]))["version"] == order["version"]
    assert await on_hand_reserved(shop, "S1", "A") == (10, 3)
    assert await events(shop, order["id"]) == timeline
    assert await idempotency_rows(shop, "k-dry") == 0

    r = await change(shop, order, actions, key="k-apply")
    assert r.status_code == 200, r.text
    applied = r.json()
    assert r.headers["ETag"] == f'"{applied["order"]["version"]}"'
    after = applied["order"]
    assert after["subtotal"] == preview["totals_after"]["subtotal"]
    assert after["total"] == preview["totals_after"]["total"] == 2500
    assert [(ln["id"], ln["quantity_cancelled"]) for ln in after["lines"]] == [
        (ln["id"], ln["quantity_cancelled"]) for ln in preview["lines"]
    ]
    fo = after["fulfillment_orders"][0]
    assert [(f["fulfillment_id"], f["status_after"]) for f in preview["fulfillments"]] == [(fo["id"], fo["status"])]
    assert await on_hand_reserved(shop, "S1", "A") == (10, 1)
    assert await on_hand_reserved(shop, "S1", "B") == (10, 1)
    changed = [e for e in await events(shop, order["id"]) if e["type"] == "order.changed"]
    assert [e["data"]["change_id"] for e in changed] == [applied["change_id"]]
    async with shop.db.unit_of_work() as uow:
        row = (
            await uow.session.execute(
                text("SELECT channel, version_before, version_after, before, after FROM order_changes WHERE id = :i"),
                {"i": applied["change_id"]},
            )
        ).one()
    assert (row.channel, row.version_before, row.version_after) == ("app", order["version"], after["version"])
    assert (row.before["total"], row.after["total"]) == (5500, 2500)
    await invariants(shop, stripe_api)

    # Handed over: the card is captured for what is left (20.00 of goods + 5.00 shipping), no more.
    staff = await shop.staff("S1")
    ready = await ready_all(shop, staff, fo)
    await hand_over(shop, staff, ready)
    await run_jobs(shop, stripe_test_gateway)
    payment = (await get_order(shop, order["id"]))["payment"]
    assert (payment["status"], payment["amount_captured"]) == ("captured", 2500)
    assert stripe_api.ledger.intent(payment["external_id"])["amount_received"] == 2500
    await invariants(shop, stripe_api, picked=True)


async def test_cancelling_every_line_cancels_the_fulfillment_and_voids_the_card(paid, stripe_api, stripe_test_gateway):
    shop = await with_b(paid)
    order = await paid_order(shop)
    r = await change(shop, order, [{"type": "cancel_line", "line_id": line(order, "B")}])
    assert r.status_code == 200, r.text
    first = r.json()["order"]
    assert [ln["quantity_cancelled"] for ln in first["lines"]] == [0, 2]
    assert first["fulfillment_orders"][0]["status"] == "pending"
    assert await on_hand_reserved(shop, "S1", "B") == (10, 0)
    r = await change(shop, first, [{"type": "cancel_line", "line_id": line(order, "A"), "quantity": 3}])
    assert r.status_code == 200, r.text
    last = r.json()["order"]
    assert last["fulfillment_orders"][0]["status"] == "cancelled"
    assert last["status"] == "cancelled"
    assert await on_hand_reserved(shop, "S1", "A") == (10, 0)
    await run_jobs(shop, stripe_test_gateway)
    payment = (await get_order(shop, order["id"]))["payment"]
    assert (payment["status"], payment["amount_captured"]) == ("voided", 0)
    await invariants(shop, stripe_api)


async def test_a_change_of_picked_units_is_refused_whole_with_a_reason_per_action(paid, stripe_api):
    shop = await with_b(paid)
    order = await paid_order(shop)
    staff = await shop.staff("S1")
    await to_ready(shop, staff, order["fulfillment_orders"][0])
    before = await get_order(shop, order["id"])
    timeline = await events(shop, order["id"])
    actions = [
        {"type": "set_quantity", "line_id": line(order, "A"), "quantity": 1},
        {"type": "change_address", "address": CUSTOMER},
    ]
    r = await change(shop, before, actions)
    problem = assert_problem(r, 409, "change-refused")
    assert problem["actions"] == [
        {"index": 0, "type": "set_quantity", "accepted": False, "reason": "already_picked"},
        {"index": 1, "type": "change_address", "accepted": False, "reason": "not_a_shipment"},
    ]
    assert await get_order(shop, order["id"]) == before
    assert await events(shop, order["id"]) == timeline
    dry = await change(shop, before, actions, dry=True)
    assert dry.status_code == 200 and dry.json()["accepted"] is False
    assert [a["reason"] for a in dry.json()["actions"]] == ["already_picked", "not_a_shipment"]
    await invariants(shop, stripe_api, picked=True)


async def test_if_match_is_required_and_a_stale_version_is_412_with_the_current_one(paid):
    shop = await with_b(paid)
    order = await paid_order(shop)
    actions = [{"type": "cancel_line", "line_id": line(order, "B"), "quantity": 1}]
    assert_problem(await change(shop, order, actions, version=False), 428, "precondition-required")
    assert (await change(shop, order, actions)).status_code == 200
    stale = assert_problem(await change(shop, order, actions), 412, "version-mismatch")
    assert stale["current_version"] == (await get_order(shop, order["id"]))["version"]


async def test_malformed_actions_and_unknown_lines_are_422(paid):
    shop = await with_b(paid)
    order = await paid_order(shop)
    assert_problem(
        await change(shop, order, [{"type": "add_line", "sku": "A", "quantity": 1}]), 422, "validation-error"
    )
    unknown = await change(shop, order, [{"type": "set_quantity", "line_id": order["id"], "quantity": 4}])
    assert_problem(unknown, 422, "invalid-request")
    nowhere = await change(shop, order, [{"type": "move_pickup", "location": "NOPE"}])
    assert_problem(nowhere, 422, "invalid-request")


async def test_a_replay_with_the_same_key_is_the_first_answer_before_if_match_is_checked(paid):
    shop = await with_b(paid)
    order = await paid_order(shop)
    actions = [{"type": "set_quantity", "line_id": line(order, "A"), "quantity": 2}]
    first = await change(shop, order, actions, key="k-1")
    assert first.status_code == 200, first.text
    again = await change(shop, order, actions, key="k-1")  # its If-Match is stale by now
    assert (again.status_code, again.content) == (200, first.content)
    assert again.headers["Idempotent-Replayed"] == "true" and again.headers["ETag"] == first.headers["ETag"]
    assert (await change(shop, order, actions, key="k-1", version=False)).content == first.content
    assert (await get_order(shop, order["id"]))["lines"][0]["quantity_cancelled"] == 1


async def queued(shop: Shop, count: int, tasks: list[asyncio.Task]) -> None:
    """Until ``count`` backends wait for a lock (behind the holder, or behind each other in its
    queue): a fact PostgreSQL reports, polled."""
    for _ in range(1000):
        assert not any(t.done() for t in tasks), [t.result().text for t in tasks if t.done()]
        async with shop.db.unit_of_work() as uow:
            n = await uow.session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND cardinality(pg_blocking_pids(pid)) > 0"
                )
            )
        if n >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the changes never queued behind the order lock")


async def test_concurrent_changes_on_one_version_one_wins_the_other_is_412(paid, stripe_api):
    shop = await with_b(paid)
    order = await paid_order(shop)
    web, app = await shop.channel("web"), await shop.channel("app")
    async with shop.db.unit_of_work() as holder:
        await holder.session.execute(text("SELECT 1 FROM orders WHERE id = :i FOR UPDATE"), {"i": order["id"]})
        tasks = [
            asyncio.create_task(change(shop, order, [{"type": "cancel_line", "line_id": line(order, s)}], headers=h))
            for s, h in (("A", web), ("B", app))
        ]
        assert await backend_pid(holder.session)
        await queued(shop, 2, tasks)
    answers = sorted([(await t).status_code for t in tasks])
    assert answers == [200, 412]
    now = await get_order(shop, order["id"])
    assert now["version"] == order["version"] + 1
    assert sorted(ln["quantity_cancelled"] for ln in now["lines"]) in ([0, 2], [0, 3])
    await invariants(shop, stripe_api)


async def test_the_address_of_a_parcel_changes_until_it_is_packed(shop):
    await shop.location("W1", capabilities=("ship",))
    await shop.product("A")
    await shop.stock("W1", "A", 5)
    r = await shop.place(shop.order_body([("A", 1)], method="ship", address=CUSTOMER))
    assert r.status_code == 201, r.text
    order = r.json()
    moved = {**CUSTOMER, "line1": "2 Other St"}
    r = await change(shop, order, [{"type": "change_address", "address": moved}])
    assert r.status_code == 200, r.text
    assert r.json()["order"]["fulfillment"]["address"]["line1"] == "2 Other St"
    async with shop.db.unit_of_work() as uow:
        kept = await uow.session.scalar(
            text("SELECT ship_address->>'line1' FROM fulfillment_orders WHERE order_id = :i"), {"i": order["id"]}
        )
    assert kept == "2 Other St"
    staff = await shop.staff("W1")
    fo = r.json()["order"]["fulfillment_orders"][0]
    for action, body in [
        ("accept", None),
        ("start-picking", None),
        ("pick", {"lines": [{"line_id": fo["lines"][0]["id"], "quantity": 1}]}),
        ("pack", None),
    ]:
        await act(shop, staff, fo["id"], action, body)
    late = await change(shop, await get_order(shop, order["id"]), [{"type": "change_address", "address": CUSTOMER}])
    assert assert_problem(late, 409, "change-refused")["actions"][0]["reason"] == "already_packed_or_shipped"
    assert await lifecycle_violations(shop.db) == []


async def test_cancel_order_keeps_what_was_handed_over_and_captures_only_that(paid, stripe_api, stripe_test_gateway):
    order = await paid_order(paid, lines=(("A", 2),))
    staff = await paid.staff("S1")
    ready = await to_ready(paid, staff, order["fulfillment_orders"][0])
    await hand_over(paid, staff, ready, quantity=1)
    now = await get_order(paid, order["id"])
    r = await change(paid, now, [{"type": "cancel_order", "reason": "the customer changed their mind"}])
    assert r.status_code == 200, r.text
    assert r.json()["order"]["lines"][0]["quantity_cancelled"] == 1
    await run_jobs(paid, stripe_test_gateway)
    payment = (await get_order(paid, order["id"]))["payment"]
    assert payment["amount_captured"] == 1250  # half the goods, half the shipping
    assert await on_hand_reserved(paid, "S1", "A") == (9, 0)
    await invariants(paid, stripe_api, picked=True)
