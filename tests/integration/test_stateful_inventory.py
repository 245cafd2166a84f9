"""Random sequences of orders (pickup and ship, 1–3 lines, two channels: one refusing short
pickups, one transferring), cancellations and stock changes (counts, deltas, safety stock,
including refused ones) against the real database; every invariant is checked after every step.

Hypothesis drives a plain (sync) state machine; each rule runs its coroutine to completion on a
private event loop with its own ``Database``, apart from pytest-asyncio's loop.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Coroutine
from typing import Any, ClassVar

from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text

from orchestrator.fulfillment.service import LifecycleSettings
from orchestrator.inventory.service import StockUpdate
from orchestrator.orders.changes import cancel_order
from orchestrator.platform.clock import ManualClock
from orchestrator.platform.db import Database, committing
from orchestrator.platform.errors import InsufficientStock, OrderNotCancellable, StockWouldGoNegative
from orchestrator.sourcing.profiles import put_profile
from tests.conftest import TABLES
from tests.integration.invariants import all_violations
from tests.integration.world import ADMIN, NOW, WEB, add_location, add_product, place, stock_changed

STORES = {"S1": (52.52, 13.40), "S2": (52.40, 13.05), "S3": (52.60, 13.60)}
SKUS = ("A", "B", "C")
LIFECYCLE = LifecycleSettings(secret="stateful")
Key = tuple[str, str]
LINES = st.lists(
    st.tuples(st.sampled_from(SKUS), st.integers(1, 4)),
    min_size=1,
    max_size=3,
    unique_by=lambda line: line[0],
)


async def _levels(db: Database) -> dict[Key, tuple[int, int, int]]:
    async with db.unit_of_work() as uow:
        rows = await uow.session.execute(
            text(
                "SELECT l.code, p.sku, s.on_hand, s.reserved, s.safety_stock FROM stock_levels s "
                "JOIN locations l ON l.id = s.location_id JOIN products p ON p.id = s.product_id"
            )
        )
        return {(r[0], r[1]): (r[2], r[3], r[4]) for r in rows}


def _available(level: tuple[int, int, int] | None) -> int:
    return max(0, level[0] - level[1] - level[2]) if level else 0


class InventoryMachine(RuleBasedStateMachine):
    loop: ClassVar[asyncio.AbstractEventLoop]
    db: ClassVar[Database]

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(NOW)
        self.orders: dict[uuid.UUID, dict[str, int]] = {}  # open orders → units per sku
        # Insertion-ordered: ids are random, so a sorted list would put the same draw on another
        # order when hypothesis replays a run (FlakyStrategyDefinition).
        self.cancelled: dict[uuid.UUID, None] = {}

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(coro)

    @initialize(
        stock=st.dictionaries(st.sampled_from([(c, s) for c in STORES for s in SKUS]), st.integers(0, 9), min_size=4)
    )
    def world(self, stock: dict[Key, int]) -> None:
        async def build() -> None:
            async with self.db.engine.begin() as conn:
                await conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
            for code, (lat, lon) in STORES.items():
                await add_location(self.db, code, lat, lon)
            for sku in SKUS:
                await add_product(self.db, sku)
            await self.db.run(
                committing(lambda uow: put_profile(uow, "app", {"on_pickup_shortfall": "transfer"}, ADMIN, NOW))
            )
            for (code, sku), qty in sorted(stock.items()):
                await stock_changed(self.db, code, sku, StockUpdate(reason="opening count", on_hand=qty))

        self.run(build())

    @rule(
        lines=LINES,
        method=st.sampled_from(["pickup", "ship"]),
        store=st.sampled_from(sorted(STORES)),
        channel=st.sampled_from(["web", "app"]),
    )
    def place_order(self, lines: list[tuple[str, int]], method: str, store: str, channel: str) -> None:
        self._place(lines, method, store, channel)

    @rule(lines=LINES, store=st.sampled_from(sorted(STORES)))
    def place_pickup_that_may_need_transfers(self, lines: list[tuple[str, int]], store: str) -> None:
        self._place(lines, "pickup", store, "app")

    def _place(self, lines: list[tuple[str, int]], method: str, store: str, channel: str) -> None:
        before = self.run(_levels(self.db))
        wanted: dict[str, int] = defaultdict(int)
        for sku, qty in lines:
            wanted[sku] += qty
        try:
            order = self.run(
                place(
                    self.db,
                    self.clock,
                    lines,
                    method=method,
                    location=store,
                    channel=channel,
                    destination=STORES[store],
                    email=f"{channel}@example.com",
                )
            )
        except InsufficientStock:
            event("placement refused: insufficient stock")
            after = self.run(_levels(self.db))
            assert after == before, "a refused order changed stock"
            return
        after = self.run(_levels(self.db))
        # The order holds exactly its units, taken only where they were available.
        taken: dict[str, int] = defaultdict(int)
        for key in set(before) | set(after):
            b, a = before.get(key, (0, 0, 0)), after.get(key, (0, 0, 0))
            assert a[0] == b[0] and a[2] == b[2], f"placing moved on_hand or safety stock at {key}"
            delta = a[1] - b[1]
            assert 0 <= delta <= _available(before.get(key)), f"{key}: reserved {delta}, {before.get(key)}"
            taken[key[1]] += delta
        assert {s: q for s, q in taken.items() if q} == wanted
        assert order["status"] == "received"
        event(
            f"placed {method} over {len({f['location'] for f in order['fulfillment_orders']})} location(s), "
            f"{'with' if any(f['method'] == 'transfer' for f in order['fulfillment_orders']) else 'no'} transfer"
        )
        self.orders[uuid.UUID(order["id"])] = dict(wanted)

    @precondition(lambda self: self.orders or self.cancelled)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        order_id = data.draw(st.sampled_from([*self.orders, *self.cancelled]))
        before = self.run(_levels(self.db))
        try:
            self.run(
                self.db.run(
                    committing(
                        lambda uow: cancel_order(uow, order_id, WEB, self.clock, LIFECYCLE, reason="customer asked")
                    )
                )
            )
        except OrderNotCancellable:
            event("cancel refused: already cancelled")
            assert order_id in self.cancelled, "an open order could not be cancelled"
            assert self.run(_levels(self.db)) == before
            return
        assert order_id not in self.cancelled, "an order was cancelled twice"
        after = self.run(_levels(self.db))
        released: dict[str, int] = defaultdict(int)
        for key, (on_hand, reserved, safety) in after.items():
            assert (on_hand, safety) == (before[key][0], before[key][2])
            released[key[1]] += before[key][1] - reserved
        assert {s: q for s, q in released.items() if q} == self.orders.pop(order_id)
        self.cancelled[order_id] = None

    @rule(store=st.sampled_from(sorted(STORES)), sku=st.sampled_from(SKUS), on_hand=st.integers(0, 15))
    def count_stock(self, store: str, sku: str, on_hand: int) -> None:
        self._change(store, sku, StockUpdate(reason="cycle count", on_hand=on_hand), lambda level: on_hand)

    @rule(store=st.sampled_from(sorted(STORES)), sku=st.sampled_from(SKUS), delta=st.integers(-6, 6))
    def adjust_stock(self, store: str, sku: str, delta: int) -> None:
        self._change(
            store,
            sku,
            StockUpdate(reason="damaged or found", delta=delta),
            lambda level: level[0] + delta,
        )

    @rule(store=st.sampled_from(sorted(STORES)), sku=st.sampled_from(SKUS), safety=st.integers(0, 4))
    def keep_back(self, store: str, sku: str, safety: int) -> None:
        self._change(
            store,
            sku,
            StockUpdate(reason="safety stock", safety_stock=safety),
            lambda level: level[0],
        )

    def _change(self, store: str, sku: str, update: StockUpdate, target) -> None:  # type: ignore[no-untyped-def]
        before = self.run(_levels(self.db))
        level = before.get((store, sku), (0, 0, 0))
        expected = target(level)
        try:
            view = self.run(stock_changed(self.db, store, sku, update))
        except StockWouldGoNegative:
            event("stock change refused")
            assert expected < 0 or expected < level[1], f"refused {update} at {level}"
            after = self.run(_levels(self.db))
            assert {k: v for k, v in after.items() if v != (0, 0, 0)} == {
                k: v for k, v in before.items() if v != (0, 0, 0)
            }, "a refused change moved stock"
            return
        assert expected >= level[1], f"accepted {update} below the reserved units at {level}"
        assert (view.on_hand, view.reserved) == (expected, level[1])
        if update.safety_stock is not None:
            assert view.safety_stock == update.safety_stock
        assert view.available == max(0, view.on_hand - view.reserved - view.safety_stock)

    @invariant()
    def stock_and_orders_agree(self) -> None:
        problems = self.run(all_violations(self.db))
        assert problems == [], problems
        levels = self.run(_levels(self.db))
        held: dict[str, int] = defaultdict(int)
        for (_, sku), (_, reserved, _) in levels.items():
            held[sku] += reserved
        promised: dict[str, int] = defaultdict(int)
        for units in self.orders.values():
            for sku, qty in units.items():
                promised[sku] += qty
        assert {s: q for s, q in held.items() if q} == {s: q for s, q in promised.items() if q}


def test_random_orders_cancellations_and_stock_changes_keep_every_stock_invariant(database_url):
    loop = asyncio.new_event_loop()
    db = Database(database_url, pool_size=4, max_overflow=0)
    InventoryMachine.loop, InventoryMachine.db = loop, db
    try:
        run_state_machine_as_test(
            InventoryMachine,
            # No shrink phase: each example rebuilds a database world, and shrinking a failure
            # would take minutes; the failing sequence (at most 20 steps) is printed as found.
            settings=settings(
                max_examples=25,
                stateful_step_count=20,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            ),
        )
    finally:
        loop.run_until_complete(db.dispose())
        loop.close()
