"""Issue #10 — a pickup store that cannot serve: the profile's ``on_pickup_shortfall`` after a
rejection and after a short pick (transfer in, move the pickup whole, or ask the customer with
ready-made changes), placement under ``move``, a reason that says what happened and what can be
done, and ``needs_attention`` only when nothing can bring the units. Stock invariants after each."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest

from orchestrator.fulfillment.service import LifecycleSettings
from orchestrator.orders import action_deadlines, change_rules
from orchestrator.platform.db import committing
from tests.e2e.support import FAR, MID, NEAR, act, decisions, events, get_order, on_hand_reserved
from tests.integration.invariants import lifecycle_violations


async def policy(shop, name: str, **more) -> None:
    r = await shop.client.put(
        "/v1/sourcing-profiles/web", json={"on_pickup_shortfall": name, **more}, headers=shop.admin
    )
    assert r.status_code == 200, r.text


async def stores(shop, s1=5, s2=5, s3=None):
    """S1 (the pickup store), S2 nearer to it than S3."""
    await shop.location("S1", lat=NEAR[0], lon=NEAR[1])
    await shop.location("S2", lat=MID[0], lon=MID[1])
    await shop.location("S3", lat=FAR[0], lon=FAR[1])
    await shop.product("A")
    for code, qty in (("S1", s1), ("S2", s2), ("S3", s3)):
        if qty:
            await shop.stock(code, "A", qty)
    return await shop.staff("S1")


async def place_pickup(shop, qty=3) -> dict:
    r = await shop.place(shop.order_body([("A", qty)], location="S1"))
    assert r.status_code == 201, r.text
    return r.json()


async def short_pick(shop, staff, fo, found):
    await act(shop, staff, fo["id"], "accept")
    await act(shop, staff, fo["id"], "start-picking")
    await act(shop, staff, fo["id"], "pick", {"lines": [{"line_id": fo["lines"][0]["id"], "quantity": found}]})


async def clean(shop):
    assert await lifecycle_violations(shop.db) == []


def live(order, method=None):
    return [
        f
        for f in order["fulfillment_orders"]
        if f["status"] not in ("rejected", "cancelled") and (method is None or f["method"] == method)
    ]


# --- ask_customer (the default) ----------------------------------------------------------------


async def test_rejection_under_the_default_waits_for_the_customer_with_ready_made_changes(shop):
    s1 = await stores(shop, s1=5, s2=5, s3=5)
    order = await place_pickup(shop)
    fo = order["fulfillment_orders"][0]
    await act(shop, s1, fo["id"], "reject", {"reason": "till broken"})

    after = await get_order(shop, order["id"])
    assert after["status"] == "action_required"
    line = after["lines"][0]
    assert line["quantity_unsourced"] == 3
    assert await on_hand_reserved(shop, "S1", "A") == (5, 0)
    assert await on_hand_reserved(shop, "S2", "A") == (5, 0)
    waiting = after["action_required"]
    options = {o["id"]: o for o in waiting["options"]}
    # Nearest first, each a /changes body; S1 (which rejected) is never offered as a target.
    assert [o["id"] for o in waiting["options"]] == [
        "move_pickup:S2",
        "move_pickup:S3",
        "wait_for_transfer",
        "go_without",
    ]
    assert options["move_pickup:S2"]["change"] == {"actions": [{"type": "move_pickup", "location": "S2"}]}
    assert options["wait_for_transfer"]["change"] == {"actions": [{"type": "move_pickup", "location": "S1"}]}
    assert options["go_without"]["change"] == {
        "actions": [{"type": "cancel_line", "line_id": line["id"], "quantity": 3}]
    }
    assert options["go_without"]["expected_ready_at"] is None  # nothing would be left to collect
    # Ready times: the store's preparation, plus the transfer time when stock travels.
    placed = datetime.fromisoformat(order["created_at"])
    moved_ready = datetime.fromisoformat(options["move_pickup:S2"]["expected_ready_at"])
    transfer_ready = datetime.fromisoformat(options["wait_for_transfer"]["expected_ready_at"])
    assert moved_ready - placed == timedelta(minutes=120)
    assert transfer_ready - placed == timedelta(hours=24, minutes=120)
    assert datetime.fromisoformat(waiting["deadline"]) - placed == timedelta(hours=24)
    # The reason says what happened and what can be done, never "no location can take".
    reason = after["attention_reason"]
    assert "no location can take" not in reason
    assert "rejection" in reason and "S2" in reason and "go without" in reason
    assert waiting["reason"] == reason

    flagged = [e for e in await events(shop, order["id"]) if e["type"] == "order.action_required"]
    assert len(flagged) == 1
    data = flagged[0]["data"]
    assert data["fallback"] == "transfer" and data["trigger"] == "rejection"
    assert [o["id"] for o in data["options"]] == [o["id"] for o in waiting["options"]]
    assert data["lines"] == [{"sku": "A", "quantity": 3}]
    assert (await decisions(shop, order["id"]))[0]["trigger"] == "rejection"
    await clean(shop)


async def test_short_pick_under_the_default_keeps_what_was_found_and_offers_the_rest(shop):
    s1 = await stores(shop, s1=3, s2=5)
    order = await place_pickup(shop, 3)
    fo = order["fulfillment_orders"][0]
    await short_pick(shop, s1, fo, 1)

    after = await get_order(shop, order["id"])
    assert after["status"] == "action_required"
    assert after["lines"][0]["quantity_unsourced"] == 2
    ids = [o["id"] for o in after["action_required"]["options"]]
    # S2 can serve all three (the found one goes back on S1's shelf), or two travel to S1.
    assert ids == ["move_pickup:S2", "wait_for_transfer", "go_without"]
    go_without = after["action_required"]["options"][-1]
    assert go_without["change"]["actions"][0]["quantity"] == 2
    assert go_without["expected_ready_at"] is not None  # the found unit stays for pickup at S1
    assert "short pick" in after["attention_reason"]
    # S1: one picked, two written off; nothing reserved elsewhere yet.
    assert await on_hand_reserved(shop, "S1", "A") == (0, 0)
    assert await on_hand_reserved(shop, "S2", "A") == (5, 0)
    await clean(shop)


async def test_nothing_anywhere_is_needs_attention_with_a_true_reason_and_the_go_without_option(shop):
    s1 = await stores(shop, s1=3, s2=None)
    order = await place_pickup(shop, 3)
    fo = order["fulfillment_orders"][0]
    await act(shop, s1, fo["id"], "reject", {"reason": "flooded"})
    after = await get_order(shop, order["id"])
    assert after["status"] == "needs_attention"
    reason = after["attention_reason"]
    assert "no store holds them" in reason and "no transfer" in reason and "go without" in reason
    options = after["action_required"]["options"]
    assert [o["id"] for o in options] == ["go_without"]
    assert after["action_required"]["deadline"] is None
    flagged = [e for e in await events(shop, order["id"]) if e["type"] == "order.needs_attention"]
    assert flagged and flagged[-1]["data"]["reason"] == reason
    await clean(shop)


# --- transfer ---------------------------------------------------------------------------------


async def test_rejection_under_transfer_starts_a_new_pickup_at_the_same_store_fed_by_transfers(shop):
    await policy(shop, "transfer")
    s1 = await stores(shop, s1=5, s2=5)
    order = await place_pickup(shop, 3)
    fo = order["fulfillment_orders"][0]
    await act(shop, s1, fo["id"], "reject", {"reason": "no staff today"})

    after = await get_order(shop, order["id"])
    assert after["status"] == "received"
    pickups, transfers = live(after, "pickup"), live(after, "transfer")
    assert len(pickups) == 1 and pickups[0]["id"] != fo["id"] and pickups[0]["location"] == "S1"
    assert len(transfers) == 1
    assert (transfers[0]["location"], transfers[0]["destination"]) == ("S2", "S1")
    assert transfers[0]["feeds_fulfillment_id"] == pickups[0]["id"]
    # The rejecting store's own shelf is no source: all three travel.
    assert transfers[0]["lines"][0]["quantity"] == 3
    assert await on_hand_reserved(shop, "S1", "A") == (5, 0)
    assert await on_hand_reserved(shop, "S2", "A") == (5, 3)
    assert after["action_required"] is None and after["lines"][0]["quantity_unsourced"] == 0
    await clean(shop)


async def test_short_pick_under_transfer_brings_the_short_units_into_the_pickup_store(shop):
    await policy(shop, "transfer")
    s1 = await stores(shop, s1=3, s2=5)
    order = await place_pickup(shop, 3)
    fo = order["fulfillment_orders"][0]
    await short_pick(shop, s1, fo, 1)
    after = await get_order(shop, order["id"])
    transfers = live(after, "transfer")
    assert len(transfers) == 1 and transfers[0]["lines"][0]["quantity"] == 2
    assert transfers[0]["feeds_fulfillment_id"] == fo["id"]
    assert await on_hand_reserved(shop, "S2", "A") == (5, 2)
    assert after["status"] == "in_progress"
    await clean(shop)


async def test_transfer_with_no_source_and_no_store_holding_it_all_needs_attention(shop):
    await policy(shop, "transfer")
    s1 = await stores(shop, s1=3, s2=1, s3=None)
    order = await place_pickup(shop, 3)
    fo = order["fulfillment_orders"][0]
    await short_pick(shop, s1, fo, 1)
    after = await get_order(shop, order["id"])
    # Two short, S2 holds one: no transfer covers them, no store holds all three.
    assert after["status"] == "needs_attention"
    assert [o["id"] for o in after["action_required"]["options"]] == ["go_without"]
    await clean(shop)


async def test_transfer_that_cannot_be_made_asks_the_customer_when_another_store_could_serve(shop):
    await policy(shop, "transfer")
    s1 = await stores(shop, s1=3, s2=None)
    # S2 sells over the counter only: it cannot send stock, but the customer can collect there.
    await shop.location("S4", lat=MID[0], lon=MID[1], capabilities=("pickup",))
    await shop.stock("S4", "A", 5)
    order = await place_pickup(shop, 3)
    fo = order["fulfillment_orders"][0]
    await short_pick(shop, s1, fo, 1)
    after = await get_order(shop, order["id"])
    assert after["status"] == "action_required"
    assert [o["id"] for o in after["action_required"]["options"]] == ["move_pickup:S4", "go_without"]
    await clean(shop)


# --- move -------------------------------------------------------------------------------------


async def test_placement_under_move_places_the_pickup_at_the_nearest_store_holding_it_all(shop):
    await policy(shop, "move")
    await stores(shop, s1=1, s2=5, s3=5)
    order = await place_pickup(shop, 3)
    assert [(f["location"], f["method"]) for f in order["fulfillment_orders"]] == [("S2", "pickup")]
    assert order["fulfillment"]["location"] == "S2"
    assert await on_hand_reserved(shop, "S1", "A") == (1, 0)
    assert await on_hand_reserved(shop, "S2", "A") == (5, 3)
    d = (await decisions(shop, order["id"]))[0]
    assert d["rule"] == "pickup_moved_to_nearest_store"
    assert [p["location"] for p in d["plan"]] == ["S2"]
    sourced = next(e for e in await events(shop, order["id"]) if e["type"] == "order.sourced")
    assert sourced["data"]["rule"] == "pickup_moved_to_nearest_store" and sourced["data"]["locations"] == ["S2"]
    await clean(shop)


async def test_placement_under_ask_customer_is_refused_with_the_stores_that_could_serve(shop):
    await stores(shop, s1=1, s2=5, s3=5)
    r = await shop.place(shop.order_body([("A", 3)], location="S1"))
    assert r.status_code == 409, r.text
    assert r.json()["suggested_locations"] == ["S2", "S3"]
    assert await on_hand_reserved(shop, "S2", "A") == (5, 0)


async def test_rejection_under_move_sends_the_whole_pickup_to_the_nearest_store(shop):
    await policy(shop, "move")
    s1 = await stores(shop, s1=5, s2=5, s3=5)
    order = await place_pickup(shop, 3)
    fo = order["fulfillment_orders"][0]
    await act(shop, s1, fo["id"], "reject", {"reason": "closed"})
    after = await get_order(shop, order["id"])
    pickups = live(after, "pickup")
    assert [(p["location"], p["lines"][0]["quantity"]) for p in pickups] == [("S2", 3)]
    assert after["fulfillment"]["location"] == "S2"
    assert after["status"] == "received"
    assert await on_hand_reserved(shop, "S1", "A") == (5, 0)
    assert await on_hand_reserved(shop, "S2", "A") == (5, 3)
    resourced = [e for e in await events(shop, order["id"]) if e["type"] == "order.resourced"]
    assert resourced[-1]["data"]["rule"] == "pickup_moved_to_nearest_store"
    await clean(shop)


async def test_short_pick_under_move_puts_the_found_units_back_and_moves_the_whole_pickup(shop):
    await policy(shop, "move")
    s1 = await stores(shop, s1=3, s2=5)
    order = await place_pickup(shop, 3)
    fo = order["fulfillment_orders"][0]
    await short_pick(shop, s1, fo, 1)
    after = await get_order(shop, order["id"])
    old = next(f for f in after["fulfillment_orders"] if f["id"] == fo["id"])
    assert old["status"] == "cancelled"
    pickups = live(after, "pickup")
    assert [(p["location"], p["lines"][0]["quantity"]) for p in pickups] == [("S2", 3)]
    assert after["fulfillment"]["location"] == "S2"
    # S1: the found unit back on the shelf, the two missing written off; S2 holds all three.
    assert await on_hand_reserved(shop, "S1", "A") == (1, 0)
    assert await on_hand_reserved(shop, "S2", "A") == (5, 3)
    moved = [e for e in await events(shop, order["id"]) if e["type"] == "fulfillment.moved"]
    assert len(moved) == 1
    assert (moved[0]["data"]["from_location"], moved[0]["data"]["to_location"]) == ("S1", "S2")
    assert moved[0]["data"]["units_restocked"] == 1
    assert after["status"] == "received" and after["action_required"] is None
    await clean(shop)


async def test_move_with_no_store_holding_it_all_asks_the_customer_instead(shop):
    await policy(shop, "move")
    s1 = await stores(shop, s1=3, s2=2)
    order = await place_pickup(shop, 3)
    fo = order["fulfillment_orders"][0]
    await short_pick(shop, s1, fo, 1)
    after = await get_order(shop, order["id"])
    # Nobody holds all three; S2 can send the two short ones.
    assert after["status"] == "action_required"
    assert [o["id"] for o in after["action_required"]["options"]] == ["wait_for_transfer", "go_without"]
    assert (await get_order(shop, order["id"]))["fulfillment"]["location"] == "S1"
    await clean(shop)


# --- the fallback at the deadline ----------------------------------------------------------------


@pytest.fixture
def lifecycle(settings):
    return LifecycleSettings.from_settings(settings)


needs_move_pickup = pytest.mark.skipif(
    not hasattr(change_rules, "MovePickup"), reason="move_pickup (order changes) not built yet"
)


async def test_fallback_cancel_at_the_deadline_cancels_the_short_units_and_keeps_the_rest(shop, clock, lifecycle):
    await policy(shop, "ask_customer", ask_customer_fallback="cancel", ask_customer_timeout_hours=2)
    s1 = await stores(shop, s1=3, s2=5)
    order = await place_pickup(shop, 3)
    fo = order["fulfillment_orders"][0]
    await short_pick(shop, s1, fo, 1)
    assert (await get_order(shop, order["id"]))["status"] == "action_required"

    clock.advance(timedelta(hours=1, minutes=59))
    swept = await action_deadlines.sweep(shop.db, clock, lifecycle)
    assert swept.cancelled == [] and swept.transferred == [] and swept.errors == []
    # Asked directly (a job that raced a deadline moved later), the order is not due either.
    early = await shop.db.run(
        committing(lambda uow: action_deadlines.fall_back_if_due(uow, uuid.UUID(order["id"]), clock, lifecycle))
    )
    assert early is None
    assert (await get_order(shop, order["id"]))["status"] == "action_required"

    clock.advance(timedelta(minutes=2))
    swept = await action_deadlines.sweep(shop.db, clock, lifecycle)
    assert [str(i) for i in swept.cancelled] == [order["id"]] and swept.errors == []
    after = await get_order(shop, order["id"])
    assert after["status"] == "in_progress" and after["action_required"] is None
    assert after["attention_reason"] is None
    line = after["lines"][0]
    assert (line["quantity_cancelled"], line["quantity_unsourced"]) == (2, 0)
    changed = [e for e in await events(shop, order["id"]) if e["type"] == "order.changed"]
    assert changed and changed[-1]["actor"].startswith("system")
    # Swept once: a second sweep finds nothing due.
    again = await action_deadlines.sweep(shop.db, clock, lifecycle)
    assert again.cancelled == [] and again.transferred == []
    # The found unit is still handed over at S1.
    ready = await act(shop, s1, fo["id"], "ready")
    assert ready["status"] == "ready_for_pickup"
    await clean(shop)


async def test_a_customer_choosing_before_the_deadline_leaves_nothing_for_the_fallback(shop, clock, lifecycle):
    await policy(shop, "ask_customer", ask_customer_fallback="cancel", ask_customer_timeout_hours=1)
    s1 = await stores(shop, s1=3, s2=5)
    order = await place_pickup(shop, 3)
    fo = order["fulfillment_orders"][0]
    await short_pick(shop, s1, fo, 2)
    waiting = await get_order(shop, order["id"])
    go_without = next(o for o in waiting["action_required"]["options"] if o["id"] == "go_without")
    r = await shop.client.post(
        f"/v1/orders/{order['id']}/changes",
        json=go_without["change"],
        headers={**await shop.channel("web"), "If-Match": f'"{waiting["version"]}"', "Idempotency-Key": "choose-1"},
    )
    assert r.status_code in (200, 201), r.text
    chosen = await get_order(shop, order["id"])
    assert chosen["action_required"] is None and chosen["status"] == "in_progress"
    clock.advance(timedelta(hours=2))
    swept = await action_deadlines.sweep(shop.db, clock, lifecycle)
    assert swept.cancelled == [] and swept.transferred == []
    assert (await get_order(shop, order["id"]))["version"] == chosen["version"]
    await clean(shop)


@needs_move_pickup
async def test_fallback_transfer_at_the_deadline_brings_the_units_into_the_pickup_store(shop, clock, lifecycle):
    await policy(shop, "ask_customer", ask_customer_timeout_hours=3)
    s1 = await stores(shop, s1=5, s2=5)
    order = await place_pickup(shop, 3)
    await act(shop, s1, order["fulfillment_orders"][0]["id"], "reject", {"reason": "till broken"})
    assert (await get_order(shop, order["id"]))["status"] == "action_required"
    clock.advance(timedelta(hours=3, minutes=1))
    swept = await action_deadlines.sweep(shop.db, clock, lifecycle)
    assert [str(i) for i in swept.transferred] == [order["id"]], swept.errors
    after = await get_order(shop, order["id"])
    assert after["action_required"] is None and after["lines"][0]["quantity_unsourced"] == 0
    assert after["fulfillment"]["location"] == "S1"
    # Placed for pickup at S1 again (the lead's move_pickup decides from where: S1's released
    # shelf first, transfers for the rest).
    pickups = live(after, "pickup")
    assert [(p["location"], p["lines"][0]["quantity"]) for p in pickups] == [("S1", 3)]
    assert all(t["destination"] == "S1" for t in live(after, "transfer"))
    assert after["status"] == "received"
    await clean(shop)


@needs_move_pickup
async def test_fallback_transfer_after_a_short_pick_transfers_the_short_units_in(shop, clock, lifecycle):
    await policy(shop, "ask_customer", ask_customer_timeout_hours=3)
    s1 = await stores(shop, s1=3, s2=5)
    order = await place_pickup(shop, 3)
    fo = order["fulfillment_orders"][0]
    await short_pick(shop, s1, fo, 1)
    clock.advance(timedelta(hours=3, minutes=1))
    swept = await action_deadlines.sweep(shop.db, clock, lifecycle)
    assert [str(i) for i in swept.transferred] == [order["id"]], swept.errors
    after = await get_order(shop, order["id"])
    assert after["action_required"] is None and after["lines"][0]["quantity_unsourced"] == 0
    transfers = live(after, "transfer")
    assert [(t["location"], t["destination"], t["lines"][0]["quantity"]) for t in transfers] == [("S2", "S1", 2)]
    assert await on_hand_reserved(shop, "S2", "A") == (5, 2)
    await clean(shop)


@needs_move_pickup
async def test_fallback_transfer_that_is_refused_cancels_the_short_units(shop, clock, lifecycle):
    await policy(shop, "ask_customer", ask_customer_timeout_hours=3)
    s1 = await stores(shop, s1=3, s2=5)
    order = await place_pickup(shop, 3)
    fo = order["fulfillment_orders"][0]
    await short_pick(shop, s1, fo, 1)
    assert (await get_order(shop, order["id"]))["status"] == "action_required"
    await shop.stock("S2", "A", 0)  # sold out meanwhile: nothing can travel any more
    clock.advance(timedelta(hours=4))
    swept = await action_deadlines.sweep(shop.db, clock, lifecycle)
    assert [str(i) for i in swept.cancelled] == [order["id"]], swept.errors
    line = (await get_order(shop, order["id"]))["lines"][0]
    assert (line["quantity_cancelled"], line["quantity_unsourced"]) == (2, 0)
    await clean(shop)


@needs_move_pickup
async def test_each_offered_option_applies_as_it_is_through_changes_dry_run_first(shop):
    s1 = await stores(shop, s1=5, s2=5, s3=5)
    order = await place_pickup(shop, 3)
    await act(shop, s1, order["fulfillment_orders"][0]["id"], "reject", {"reason": "till broken"})
    waiting = await get_order(shop, order["id"])
    option = waiting["action_required"]["options"][0]
    assert option["id"] == "move_pickup:S2"
    web = await shop.channel("web")
    url = f"/v1/orders/{order['id']}/changes"
    headers = {**web, "If-Match": f'"{waiting["version"]}"'}
    dry = await shop.client.post(url + "?dry_run=true", json=option["change"], headers=headers)
    assert dry.status_code == 200, dry.text
    assert (await get_order(shop, order["id"]))["version"] == waiting["version"]
    r = await shop.client.post(url, json=option["change"], headers={**headers, "Idempotency-Key": "opt-1"})
    assert r.status_code in (200, 201), r.text
    after = await get_order(shop, order["id"])
    assert after["status"] == "received" and after["action_required"] is None
    assert after["attention_reason"] is None and after["lines"][0]["quantity_unsourced"] == 0
    assert after["fulfillment"]["location"] == "S2"
    assert [(p["location"], p["lines"][0]["quantity"]) for p in live(after, "pickup")] == [("S2", 3)]
    assert await on_hand_reserved(shop, "S2", "A") == (5, 3)
    await clean(shop)


async def test_simulation_shows_the_move_the_profile_would_make(shop):
    r = await shop.client.put("/v1/sourcing-profiles/sim", json={"on_pickup_shortfall": "move"}, headers=shop.admin)
    assert r.status_code == 200, r.text
    await stores(shop, s1=1, s2=5)
    lines = [{"sku": "A", "quantity": 3, "unit_price": 100}]
    body = {"channel": "sim", "method": "pickup", "location": "S1", "lines": lines}
    r = await shop.client.post("/v1/sourcing/simulate", json=body, headers=shop.admin)
    assert r.status_code == 200, r.text
    sim = r.json()
    assert sim["rule"] == "pickup_moved_to_nearest_store" and sim["complete"]
    assert [(f["location"], f["method"]) for f in sim["fulfillments"]] == [("S2", "pickup")]
    assert await on_hand_reserved(shop, "S2", "A") == (5, 0)
