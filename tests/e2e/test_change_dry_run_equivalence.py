"""The applied change does exactly what its dry run said when nothing else changed in between
(issue 10, "Order changes"), over random small worlds and random changes, through HTTP on the
real database: 2–3 stores with random stock of A and B, one pickup or ship order, perhaps some
steps at the store, then 1–3 actions of every type with valid and invalid parameters. The dry run
is made, then the change applied with the same If-Match and Idempotency-Key:

- the dry run wrote nothing (order, timeline, stock rows, ledger, keys, change records, outbox);
- a request the dry run answers with a problem is the same problem when applied;
- accepted ⇔ 200; refused ⇔ 409 ``change-refused`` with the same per-action decisions;
- accepted: the order's lines and totals are the preview's ``lines`` / ``totals_after``; every
  fulfillment the preview lists has its ``status_after`` / ``location_after`` and its lines the
  ``units_cancelled``; the others kept their status and store; the ledger released and restocked
  exactly the preview's ``units_released`` / ``units_restocked``, reserved only at the stores its
  ``sourcing`` names, created its ``fulfillments_created`` and ``transfers``; the expected ready
  time is the preview's;
- the stock invariants after every example.

Each example runs on a private event loop with its own app, as ``test_money_state_machine`` does.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, example, given, note, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from sqlalchemy import text

from orchestrator.app import create_app
from orchestrator.platform.clock import ManualClock
from orchestrator.platform.db import Database
from tests.conftest import TABLES
from tests.e2e.conftest import Shop, serving, settings_for
from tests.e2e.support import BASE, CUSTOMER, on_hand_reserved
from tests.e2e.test_order_changes import change, line
from tests.integration.event_schemas import event_violations
from tests.integration.invariants import all_violations, lifecycle_violations

SKUS = ("A", "B")
STORES = (("S1", 52.52, 13.40, ("pickup", "curbside", "ship")), ("S2", 52.50, 13.30, ("pickup", "ship")))
SHIP_ONLY = ("S3", 52.40, 13.05, ("ship",))
ELSEWHERE = {**CUSTOMER, "line1": "9 Other St"}
CLOSED = {"cancelled", "rejected", "expired", "picked_up", "delivered"}
PICK = st.integers(0, 2**16)

# An action drawn as plain numbers, made concrete against the order (``materialised``): every
# replay draws the same way whatever ids the service answered (no FlakyStrategyDefinition).
LOCATIONS = st.sampled_from(("S1", "S2", "S3", "S1", "S2", "S9"))  # S9 is unknown; S3 ships only
ACTIONS = st.one_of(
    st.tuples(st.just("set_quantity"), PICK, st.integers(0, 4)),
    st.tuples(st.just("cancel_line"), PICK, st.sampled_from((None, 1, 1, 2, 5))),
    st.tuples(st.just("add_line"), st.sampled_from(("A", "B", "C", "NOPE")), st.integers(1, 3)),
    st.tuples(st.just("move_pickup"), LOCATIONS),
    st.tuples(st.just("switch_to_ship"), st.just(None)),
    st.tuples(st.just("switch_to_pickup"), LOCATIONS),
    st.tuples(st.just("change_address"), st.just(None)),
    st.tuples(st.just("cancel_order"), st.just(None)),
)


@dataclass(frozen=True)
class Spec:
    stores: int  # 2 or 3 (S3 ships only)
    stock: tuple[int, ...]  # per (store, sku), S1.A, S1.B, S2.A, ...
    method: str
    pickup_at: str
    lines: tuple[tuple[str, int], ...]
    steps: int  # at the store: 0 none, 1 accept, 2 start picking, 3 pick one unit
    actions: tuple[tuple, ...]


SPECS = st.builds(
    Spec,
    stores=st.integers(2, 3),
    stock=st.tuples(*[st.sampled_from((0, 1, 2, 4, 5, 6))] * 6),
    method=st.sampled_from(("pickup", "pickup", "ship")),
    pickup_at=st.sampled_from(("S1", "S2")),
    lines=st.sampled_from(((("A", 1),), (("A", 2),), (("B", 3),), (("A", 1), ("B", 1)), (("A", 3), ("B", 2)))),
    steps=st.sampled_from((0, 0, 1, 2, 3)),
    # Mostly one action (most changes are), else two or three: together they meet the rules of
    # order (take-aways, additions, one placement) and the refusals of a whole change.
    actions=st.one_of(st.tuples(ACTIONS), st.lists(ACTIONS, min_size=2, max_size=3).map(tuple)),
)
# Worlds every run covers, whatever is drawn.
EXPLICIT = (
    # a pickup moving to a store short of part of it (a transfer), after picking started
    Spec(2, (5, 5, 1, 0, 0, 0), "pickup", "S1", (("A", 3), ("B", 2)), 2, (("move_pickup", "S2"),)),
    # a pick made: the moved pickup's picked unit goes back on the shelf
    Spec(2, (5, 5, 5, 5, 0, 0), "pickup", "S1", (("A", 2),), 3, (("move_pickup", "S2"),)),
    # lower one line, raise another, add a line: joined to the pickup nobody picks yet
    Spec(
        2,
        (5, 5, 5, 5, 0, 0),
        "pickup",
        "S2",
        (("A", 3), ("B", 2)),
        1,
        (("set_quantity", 0, 1), ("set_quantity", 1, 4), ("add_line", "A", 2)),
    ),
    # pickup → ship, and a shipment → pickup at a store that ships only (refused)
    Spec(3, (2, 2, 2, 2, 5, 5), "pickup", "S1", (("A", 1), ("B", 1)), 0, (("switch_to_ship", None),)),
    Spec(3, (2, 2, 2, 2, 5, 5), "ship", "S1", (("A", 3),), 0, (("switch_to_pickup", "S3"),)),
    Spec(2, (0, 0, 5, 5, 0, 0), "ship", "S1", (("A", 3),), 1, (("switch_to_pickup", "S1"), ("cancel_line", 0, 1))),
    # cancel the order after a pick; cancel a line with units still unsourced
    Spec(2, (5, 5, 5, 5, 0, 0), "pickup", "S1", (("A", 2), ("B", 1)), 3, (("cancel_order", None),)),
    Spec(2, (1, 0, 0, 0, 0, 0), "pickup", "S1", (("A", 3),), 0, (("cancel_line", 0, 2),)),
    # raised, then lowered below what the order held before, in one change
    Spec(2, (5, 5, 5, 5, 0, 0), "pickup", "S1", (("A", 2),), 0, (("set_quantity", 0, 4), ("set_quantity", 0, 0))),
)


def materialised(drawn: tuple, order: dict) -> dict[str, Any]:
    """The action's body on this order; a line pick past the order's lines names no line (422)."""
    kind = drawn[0]
    lines = order["lines"]
    match drawn:
        case ("set_quantity" | "cancel_line", pick, quantity):
            at = pick % (len(lines) * 4 + 1)
            line_id = lines[at % len(lines)]["id"] if at < len(lines) * 4 else str(uuid.uuid4())
            body = {"type": kind, "line_id": line_id}
            return body if quantity is None else {**body, "quantity": quantity}
        case ("add_line", sku, quantity):
            return {"type": kind, "sku": sku, "quantity": quantity, "unit_price": 700}
        case ("move_pickup" | "switch_to_pickup", location):
            return {"type": kind, "location": location}
        case ("switch_to_ship" | "change_address", _):
            return {"type": kind, "address": ELSEWHERE}
    return {"type": kind}


# --- a world of its own per example ---------------------------------------------------------------


@dataclass
class Harness:
    loop: asyncio.AbstractEventLoop
    db: Database
    redis: Redis
    database_url: str
    redis_url: str

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)


@pytest.fixture(scope="module")
def harness(database_url: str, redis_url: str) -> Iterator[Harness]:
    loop = asyncio.new_event_loop()
    db = Database(database_url, pool_size=8, max_overflow=4)
    redis = Redis.from_url(redis_url)
    try:
        yield Harness(loop, db, redis, database_url, redis_url)
    finally:
        loop.run_until_complete(redis.aclose())
        loop.run_until_complete(db.dispose())
        loop.close()


@asynccontextmanager
async def fresh_shop(h: Harness, clock: ManualClock):
    """Every table emptied, the app serving on this loop."""
    async with h.db.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    app = create_app(settings_for(h.database_url, h.redis_url), db=h.db, redis=h.redis, clock=clock)
    async with serving(app) as client:
        yield Shop(client, h.db, clock)


async def stores_and_stock(shop: Shop, count: int, stock: tuple[int, ...]) -> None:
    for code, lat, lon, caps in (*STORES, SHIP_ONLY)[:count]:
        await shop.location(code, lat, lon, capabilities=caps)
    for sku in (*SKUS, "C"):  # C has no stock anywhere
        await shop.product(sku)
    for i, (code, *_) in enumerate((*STORES, SHIP_ONLY)[:count]):
        for j, sku in enumerate(SKUS):
            await shop.stock(code, sku, stock[(i * len(SKUS) + j) % len(stock)])


async def get(shop: Shop, path: str) -> Any:
    r = await shop.client.get(path, headers=shop.admin)
    assert r.status_code == 200, r.text
    return r.json()


async def store_steps(shop: Shop, order: dict, steps: int) -> bool:
    """Up to ``steps`` steps at the store of the first open customer-facing fulfillment; whether
    a unit was picked."""
    facing = [f for f in order["fulfillment_orders"] if f["method"] != "transfer" and f["status"] not in CLOSED]
    if not facing or not steps:
        return False
    fo = facing[0]
    staff = await shop.staff(fo["location"])
    plan = [("accept", None), ("start-picking", None)]
    plan.append(("pick", {"lines": [{"line_id": fo["lines"][0]["id"], "quantity": 1}]}))
    for n, (action, body) in enumerate(plan[:steps]):
        r = await shop.client.post(f"/v1/fulfillments/{fo['id']}/{action}", json=body, headers=staff)
        if r.status_code != 200:
            event(f"store step {action} answered {r.status_code}")
            return False
        if n == 2:
            return True
    return False


SNAPSHOT_SQL = {
    "stock": "SELECT location_id, product_id, on_hand, reserved, safety_stock FROM stock_levels ORDER BY 1, 2",
    "reservations": "SELECT id, location_id, product_id, quantity, status FROM reservations ORDER BY id",
    "movements": "SELECT count(*) FROM inventory_movements",
    "keys": "SELECT count(*) FROM idempotency_keys",
    "changes": "SELECT count(*) FROM order_changes",
    "outbox": "SELECT count(*) FROM outbox",
    "decisions": "SELECT count(*) FROM sourcing_decisions",
    "fulfillments": "SELECT id, status, location_id, version FROM fulfillment_orders ORDER BY id",
    "lines": (
        "SELECT id, quantity, quantity_cancelled, quantity_picked, quantity_handed_over "
        "FROM fulfillment_order_lines ORDER BY id"
    ),
}


async def rows(db: Database) -> dict[str, list]:
    async with db.unit_of_work() as uow:
        return {name: [tuple(r) for r in await uow.session.execute(text(sql))] for name, sql in SNAPSHOT_SQL.items()}


async def snapshot(shop: Shop, order_id: str) -> dict[str, Any]:
    return {
        "order": await get(shop, f"/v1/orders/{order_id}"),
        "events": await get(shop, f"/v1/orders/{order_id}/events"),
        **await rows(shop.db),
    }


async def movements_since(db: Database, after: int) -> list[tuple[str, str, int, int]]:
    """(kind, location code, on_hand delta, reserved delta) of the ledger rows past ``after``."""
    async with db.unit_of_work() as uow:
        found = await uow.session.execute(
            text(
                "SELECT m.kind, l.code, m.on_hand_delta, m.reserved_delta FROM inventory_movements m "
                "JOIN locations l ON l.id = m.location_id WHERE m.id > :after ORDER BY m.id"
            ),
            {"after": after},
        )
        return [tuple(r) for r in found]


async def last_movement(db: Database) -> int:
    async with db.unit_of_work() as uow:
        return int(await uow.session.scalar(text("SELECT coalesce(max(id), 0) FROM inventory_movements")))


def totals_of(order: dict) -> dict[str, int]:
    keys = ("subtotal", "shipping_total", "tax_total", "discount_total", "total")
    return {k: order[k] for k in keys}


def when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


# --- the property ---------------------------------------------------------------------------------


async def dry_run_then_apply(h: Harness, spec: Spec) -> None:
    clock = ManualClock(datetime.now(UTC))
    async with fresh_shop(h, clock) as shop:
        await stores_and_stock(shop, spec.stores, spec.stock)
        body = shop.order_body(list(spec.lines), method=spec.method, location=spec.pickup_at, address=CUSTOMER)
        placed = await shop.place(body)
        if placed.status_code != 201:
            event(f"not placed: {placed.status_code} {placed.json().get('type')}")
            assert placed.status_code in (409, 422), placed.text
            return
        order = placed.json()
        picked = await store_steps(shop, order, spec.steps)
        order = await get(shop, f"/v1/orders/{order['id']}")
        actions = [materialised(a, order) for a in spec.actions]
        note(f"actions: {actions}")
        await check_equivalence(shop, order, actions)
        violations = await (lifecycle_violations if picked else all_violations)(shop.db)
        assert violations == [], violations
        assert await event_violations(shop.db) == []


async def check_equivalence(shop: Shop, order: dict, actions: list[dict]) -> None:
    url = f"/v1/orders/{order['id']}/changes"
    headers = {**await shop.channel("app"), "If-Match": f'"{order["version"]}"', "Idempotency-Key": "change-1"}
    before = await snapshot(shop, order["id"])
    dry = await shop.client.post(url + "?dry_run=true", json={"actions": actions}, headers=headers)
    assert await snapshot(shop, order["id"]) == before, "the dry run wrote something"
    mark = await last_movement(shop.db)
    applied = await shop.client.post(url, json={"actions": actions}, headers=headers)
    if dry.status_code != 200:
        # A request that means nothing on this order: the same problem either way, nothing written.
        assert dry.status_code in (403, 422), dry.text
        assert (applied.status_code, applied.json()["type"]) == (dry.status_code, dry.json()["type"]), applied.text
        assert await snapshot(shop, order["id"]) == before
        event(f"problem {dry.json()['type'].removeprefix(BASE)}")
        return
    preview = dry.json()
    if not preview["accepted"]:
        assert applied.status_code == 409, applied.text
        problem = applied.json()
        assert problem["type"] == BASE + "change-refused", problem
        assert problem["actions"] == preview["actions"]
        assert preview["totals_after"] == preview["totals_before"] == totals_of(order)
        now = await snapshot(shop, order["id"])
        assert {k: v for k, v in now.items() if k != "keys"} == {k: v for k, v in before.items() if k != "keys"}
        event("refused: " + ",".join(sorted({a["reason"] for a in preview["actions"] if a["reason"]})))
        return
    assert applied.status_code == 200, applied.text
    event("accepted: " + ",".join(sorted({a["type"] for a in actions})))
    after = applied.json()["order"]
    assert after["version"] == order["version"] + 1

    # Lines and totals as previewed.
    shown = [{k: ln[k] for k in ("id", "sku", "quantity", "quantity_cancelled", "unit_price")} for ln in after["lines"]]
    # An added line's id is drawn when each request is read: the preview's cannot be the applied one's.
    known = {ln["id"] for ln in order["lines"]}
    assert [ln if ln["id"] in known else {**ln, "id": None} for ln in shown] == [
        ln if ln["id"] in known else {**ln, "id": None} for ln in preview["lines"]
    ], (actions, preview)
    assert preview["totals_before"] == totals_of(order)
    assert totals_of(after) == preview["totals_after"]
    assert preview["payment_difference"] == after["total"] - order["total"]

    # The fulfillments the preview lists are as it said; the others kept their status and store.
    was = {f["id"]: f for f in order["fulfillment_orders"]}
    now = {f["id"]: f for f in after["fulfillment_orders"]}
    listed = {f["fulfillment_id"]: f for f in preview["fulfillments"]}
    assert len(listed) == len(preview["fulfillments"]), "a fulfillment listed twice"
    for fo_id, said in listed.items():
        old, new = was[fo_id], now[fo_id]
        assert (said["location"], said["status_before"]) == (old["location"], old["status"])
        assert (new["status"], new["location"]) == (said["status_after"], said["location_after"]), (said, new)
        cancelled = sum(ln["quantity_cancelled"] for ln in new["lines"]) - sum(
            ln["quantity_cancelled"] for ln in old["lines"]
        )
        assert cancelled == said["units_cancelled"], (said, old, new)
    for fo_id, old in was.items():
        if fo_id not in listed:
            assert (now[fo_id]["status"], now[fo_id]["location"]) == (old["status"], old["location"]), fo_id

    # New fulfillments, transfers and the stores that reserved: as the preview's sourcing said.
    created = [f for f in after["fulfillment_orders"] if f["id"] not in was]
    assert len(created) == sum(s["fulfillments_created"] for s in preview["sourcing"])
    assert sum(f["method"] == "transfer" for f in created) == sum(s["transfers"] for s in preview["sourcing"])
    moved = await movements_since(shop.db, mark)
    released = sum(-reserved for kind, _, _, reserved in moved if kind == "release")
    assert released == sum(f["units_released"] for f in preview["fulfillments"]), moved
    restocked = sum(on_hand for kind, _, on_hand, _ in moved if kind == "restock")
    assert restocked == sum(f["units_restocked"] for f in preview["fulfillments"]), moved
    reserving = {code for kind, code, _, reserved in moved if kind == "reservation" and reserved}
    assert reserving == {code for s in preview["sourcing"] for code in s["locations"]}, (moved, preview["sourcing"])
    placed = sum(reserved for kind, _, _, reserved in moved if kind == "reservation")
    reserved_change = sum(r[3] for r in (await rows(shop.db))["stock"]) - sum(r[3] for r in before["stock"])
    assert reserved_change == placed - released, moved
    decisions = [d for d in await get(shop, f"/v1/orders/{order['id']}/sourcing") if d["trigger"] == "order_change"]
    assert sorted(d["rule"] for d in decisions) == sorted(s["rule"] for s in preview["sourcing"])
    assert when(after["expected_ready_at"]) == when(preview["expected_ready_at"])


def explicit_examples(test: Any) -> Any:
    for spec in EXPLICIT:
        test = example(spec=spec)(test)
    return test


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(spec=SPECS)
@explicit_examples
def test_the_applied_change_does_what_its_dry_run_said(harness: Harness, spec: Spec) -> None:
    note(repr(spec))
    harness.run(dry_run_then_apply(harness, spec))


# --- what the property found, one example each ----------------------------------------------------


async def test_the_dry_run_of_cancel_order_counts_every_unit_it_cancels(two_stores):
    """``cancel_order`` cancels the open fulfillments through their cancel transition, whose
    outcomes carry the order lines' cancelled units; the preview's ``lines`` must count them."""
    shop = two_stores
    r = await shop.place(shop.order_body([("A", 2)]))
    assert r.status_code == 201, r.text
    order = r.json()
    dry = await change(shop, order, [{"type": "cancel_order"}], dry=True)
    assert dry.status_code == 200, dry.text
    applied = await change(shop, order, [{"type": "cancel_order"}])
    assert applied.status_code == 200, applied.text
    assert [ln["quantity_cancelled"] for ln in applied.json()["order"]["lines"]] == [2]
    assert [ln["quantity_cancelled"] for ln in dry.json()["lines"]] == [2]


async def test_raising_then_lowering_a_line_in_one_change_reserves_nothing_for_cancelled_units(two_stores):
    """2 → 4 → 0 in one change: what the change raised is taken back first (it was never placed),
    so the line ends with 2 ordered and 2 cancelled, and nothing of it stays due or reserved."""
    shop = two_stores
    r = await shop.place(shop.order_body([("A", 2)]))
    assert r.status_code == 201, r.text
    order = r.json()
    actions = [
        {"type": "set_quantity", "line_id": line(order, "A"), "quantity": 4},
        {"type": "set_quantity", "line_id": line(order, "A"), "quantity": 0},
    ]
    applied = await change(shop, order, actions)
    assert applied.status_code == 200, applied.text
    [after] = applied.json()["order"]["lines"]
    assert (after["quantity"], after["quantity_cancelled"]) == (2, 2)
    assert await on_hand_reserved(shop, "S1", "A") == (5, 0)
    assert await all_violations(shop.db) == []
