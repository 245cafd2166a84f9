"""Random sequences of orders, store steps and order changes over HTTP (issue 10, "Order
changes"): orders placed on the web, changed from the web and the app, pickups moved by the staff
of the store the customer turns up at (after a counter lookup), stale versions (412 with the
current one) and two channels changing the same version at once (one wins, the other is 412;
never a lost update), next to accepting, picking, readying, handing over (the customer's code)
and rejecting at the stores. After every step:

- the stock invariants (``lifecycle_violations``) and the event schemas;
- every order line's units are accounted for once: quantity = fulfilled + cancelled + due on the
  customer-facing fulfillments + unsourced;
- the subtotal is what the pricing rules of ``change_rules`` make it, tracked here from the
  actions each accepted change held: a unit taken away takes its price off, a unit raised or
  added puts its price on, ``cancel_order`` and the store's steps leave it; while the order saw no
  ``cancel_order``, that is Σ (quantity − cancelled) × unit_price over its lines.

Hypothesis drives a plain (sync) state machine; each rule runs its coroutine to completion on a
private event loop where the app runs (as ``test_money_state_machine``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import (
    initialize,
    invariant,
    precondition,
    rule,
)

from tests.e2e.conftest import settings_for
from tests.e2e.http_machines import HttpMachine, run_machine
from tests.e2e.support import BASE, CUSTOMER, pickup_code
from tests.e2e.test_change_dry_run_equivalence import ACTIONS, materialised
from tests.integration.event_schemas import event_violations
from tests.integration.invariants import lifecycle_violations

PICK = st.integers(0, 2**16)
LINES = st.sampled_from(((("A", 1),), (("A", 2),), (("B", 2),), (("A", 1), ("B", 1)), (("A", 2), ("B", 2))))
CHANGES = st.one_of(st.tuples(ACTIONS), st.lists(ACTIONS, min_size=2, max_size=3).map(tuple))
CLOSED = {"cancelled", "rejected", "expired", "picked_up", "delivered"}
EMAIL = "ann@example.com"


@dataclass
class Tracked:
    id: str
    number: str
    subtotal: int  # what the pricing rules make it
    cancelled_whole: bool = False  # a cancel_order kept the totals: Σ (quantity − cancelled) no longer is it


def chosen(items: list, pick: int):  # noqa: ANN201 - one of ``items``, by a drawn number
    return items[pick % len(items)]


def subtotal_after(order: dict, actions: list[dict]) -> int:
    """The subtotal the rules give the accepted ``actions``, from the order before them: each
    line's units left move by what set_quantity / cancel_line make of them, at the line's price;
    an added line costs its price; cancel_order keeps the totals."""
    price = {ln["id"]: ln["unit_price"] for ln in order["lines"]}
    left = {ln["id"]: ln["quantity"] - ln["quantity_cancelled"] for ln in order["lines"]}
    moved = 0
    for action in actions:
        match action["type"]:
            case "set_quantity":
                moved += (action["quantity"] - left[action["line_id"]]) * price[action["line_id"]]
                left[action["line_id"]] = action["quantity"]
            case "cancel_line":
                units = action.get("quantity", left[action["line_id"]])
                moved -= units * price[action["line_id"]]
                left[action["line_id"]] -= units
            case "add_line":
                moved += action["quantity"] * action["unit_price"]
    return order["subtotal"] + moved


class ChangeMachine(HttpMachine):
    def __init__(self) -> None:
        super().__init__()
        self.orders: list[Tracked] = []

    @initialize()
    def world(self) -> None:
        self.run(self._world())

    async def _world(self) -> None:
        self.shop = await self.serve(settings_for(self.database_url, self.redis_url))
        await self.shop.location("S1", 52.52, 13.40, capabilities=("pickup", "ship"))
        await self.shop.location("S2", 52.50, 13.30, capabilities=("pickup", "ship"))
        await self.shop.location("S3", 52.40, 13.05, capabilities=("ship",))
        for sku in ("A", "B", "C"):
            await self.shop.product(sku)
        for code, sku, units in (("S1", "A", 6), ("S1", "B", 3), ("S2", "A", 3), ("S2", "B", 4), ("S3", "A", 2)):
            await self.shop.stock(code, sku, units)
        self.web, self.app = await self.shop.channel("web"), await self.shop.channel("app")
        self.store_staff = await self.shop.staff("S1", "S2", "S3")  # works every store's queue
        self.counter = {code: await self.shop.staff(code) for code in ("S1", "S2")}  # at one counter each

    # --- rules ------------------------------------------------------------------------------------

    @rule(lines=LINES, ship=st.booleans(), at=st.sampled_from(("S1", "S2")))
    def place(self, lines: tuple, ship: bool, at: str) -> None:
        body = self.shop.order_body(list(lines), method="ship" if ship else "pickup", location=at, address=CUSTOMER)
        r = self.run(self.shop.place(body, headers=self.web))
        if r.status_code == 409:
            assert r.json()["type"] == BASE + "insufficient-stock", r.text
            event("not placed: no stock")
            return
        assert r.status_code == 201, r.text
        order = r.json()
        self.orders.append(Tracked(order["id"], order["number"], order["subtotal"]))
        event(f"placed {order['status']}")

    @precondition(lambda self: self.orders)
    @rule(pick=PICK, which=PICK, share=st.integers(1, 100), steps=st.integers(1, 4))
    def store_moves_on(self, pick: int, which: int, share: int, steps: int) -> None:
        """The next ``steps`` steps at the store of one of the order's open fulfillments: accept,
        start picking, pick (part of what is left), ready or pack, hand over."""
        for _ in range(steps):
            self._store_step(pick, which, share, reject=False)

    @precondition(lambda self: self.orders)
    @rule(pick=PICK, which=PICK, share=st.integers(50, 100), steps=st.integers(2, 5))
    def store_moves_on_further(self, pick: int, which: int, share: int, steps: int) -> None:
        for _ in range(steps):
            self._store_step(pick, which, share, reject=False)

    @precondition(lambda self: self.orders)
    @rule(pick=PICK, which=PICK, short=st.booleans())
    def store_rejects_or_picks_short(self, pick: int, which: int, short: bool) -> None:
        """The store rejects a fulfillment, or marks it ready with units still unpicked (a short
        pick): the order's shortfall policy takes over."""
        if not short:
            self._store_step(pick, which, 100, reject=True)
            return
        for _ in range(4):
            self._store_step(pick, which, 50, reject=False, short=True)

    def _store_step(self, pick: int, which: int, share: int, *, reject: bool, short: bool = False) -> None:
        order = self.run(self._order(chosen(self.orders, pick).id))
        open_ = [f for f in order["fulfillment_orders"] if f["status"] not in CLOSED]
        if not open_:
            return
        fo = chosen(open_, which)
        # Units a transfer brings to this pickup are not picked here.
        incoming: dict[str, int] = {}
        for t in order["fulfillment_orders"]:
            if t["feeds_fulfillment_id"] == fo["id"]:
                for tl in t["lines"]:
                    units = tl["quantity"] - tl["quantity_cancelled"] - tl["quantity_handed_over"]
                    incoming[tl["order_line_id"]] = incoming.get(tl["order_line_id"], 0) + units
        todo = [
            (
                ln["id"],
                ln["quantity"]
                - ln["quantity_picked"]
                - ln["quantity_cancelled"]
                - incoming.get(ln["order_line_id"], 0),
            )
            for ln in fo["lines"]
        ]
        todo = [(i, max(1, q * share // 100)) for i, q in todo if q > 0]
        allowed = fo["allowed_actions"]
        some_picked = any(ln["quantity_picked"] for ln in fo["lines"])
        if reject:
            steps = ["reject"]
        elif short and some_picked:  # ready (or packed) with units still to pick
            steps = ["ready", "pack"]
        else:
            steps = ["accept", "start_picking", "pick" if todo else "ready", "ready", "pack", "ship", "deliver"]
        step = next((s for s in steps if s in allowed), None)
        if step is None:
            if not reject and "handover" in allowed:
                self.run(self._hand_over(fo))
                event("store handover")
            return
        body: dict[str, Any] | None = None
        if step == "pick":
            body = {"lines": [{"line_id": i, "quantity": q} for i, q in todo]}
        elif step == "reject":
            body = {"reason": "no time"}
        elif step == "ship":
            body = {"carrier": "DHL", "tracking_number": f"T{which}"}
        r = self.run(self._post(f"/v1/fulfillments/{fo['id']}/{step.replace('_', '-')}", body, self.store_staff))
        if step == "ready" and r.status_code == 409 and r.json().get("context", {}).get("transfers"):
            event("ready waits for a transfer")
            return
        if short and step in ("ready", "pack") and todo:
            event(f"short pick answered {r.status_code}")
        assert r.status_code == 200, (step, fo["status"], r.text)
        event(f"store {step} ({fo['method']})")

    @precondition(lambda self: self.orders)
    @rule(pick=PICK, drawn=CHANGES, from_app=st.booleans())
    def change(self, pick: int, drawn: tuple, from_app: bool) -> None:
        """A change from the web or the app on the current version: applied whole, refused whole
        (409 with a reason per action) or a 422 that means nothing on this order."""
        tracked = chosen(self.orders, pick)
        order = self.run(self._order(tracked.id))
        actions = [materialised(a, order) for a in drawn]
        r = self.run(self._change(order, actions, self.app if from_app else self.web))
        self._settled(tracked, order, actions, r)

    @precondition(lambda self: self.orders)
    @rule(pick=PICK, elsewhere=st.booleans())
    def staff_move_the_pickup_here(self, pick: int, elsewhere: bool) -> None:
        """The customer turns up at a store (mostly not the one the order is for): its staff find
        the order at the counter (number and email) and move the pickup to their store; any
        other action is forbidden to them."""
        tracked = chosen(self.orders, pick)
        meant = self.run(self._order(tracked.id))["fulfillment"]["location"] or "S1"
        at = {"S1": "S2", "S2": "S1"}.get(meant, "S1") if elsewhere else meant
        staff = self.counter[at]
        own = self.run(self.shop.client.get(f"/v1/orders/{tracked.id}", headers=staff))
        if own.status_code == 200:  # an order of their store: no lookup needed
            order = own.json()
        else:
            assert own.status_code == 404, own.text
            lookup = {"number": tracked.number, "verify": EMAIL}
            found = self.run(self._post("/v1/pickup-lookup", lookup, staff))
            if found.status_code == 429:  # the lookups are rate-limited per key
                event("lookup rate-limited")
                return
            if found.status_code != 200:
                assert found.status_code == 404, found.text  # nothing to pick up (a shipment, or closed)
                event("lookup found nothing")
                return
            order = found.json()
        cancel = [{"type": "cancel_order"}]
        forbidden = self.run(self._change(order, cancel, staff))
        assert (forbidden.status_code, forbidden.json()["type"]) == (403, BASE + "forbidden"), forbidden.text
        actions = [{"type": "move_pickup", "location": at}]
        r = self.run(self._change(order, actions, staff))
        self._settled(tracked, order, actions, r, by="staff")

    @precondition(lambda self: self.orders)
    @rule(pick=PICK, drawn=CHANGES, ahead=st.booleans())
    def stale_version(self, pick: int, drawn: tuple, ahead: bool) -> None:
        """A change on a version that is not the order's: 412 naming the current one, nothing written."""
        tracked = chosen(self.orders, pick)
        order = self.run(self._order(tracked.id))
        stale = order["version"] + 1 if ahead or order["version"] <= 1 else order["version"] - 1
        actions = [materialised(a, order) for a in drawn]
        r = self.run(self._change(order, actions, self.app, version=stale))
        # The version is checked before anything of the actions (an unknown line or sku) is.
        assert (r.status_code, r.json()["type"]) == (412, BASE + "version-mismatch"), r.text
        assert r.json()["current_version"] == order["version"]
        event("stale: 412")
        assert self.run(self._order(tracked.id)) == order

    @precondition(lambda self: self.orders)
    @rule(pick=PICK, first=CHANGES, second=CHANGES)
    def two_channels_at_once(self, pick: int, first: tuple, second: tuple) -> None:
        """The web and the app change the same version at once: at most one wins; when both would
        be accepted alone, exactly one does and the other is 412 with the winner's version."""
        tracked = chosen(self.orders, pick)
        order = self.run(self._order(tracked.id))
        bodies = [[materialised(a, order) for a in drawn] for drawn in (first, second)]
        alone = [
            self.run(self._change(order, b, h, dry=True)) for b, h in zip(bodies, (self.web, self.app), strict=True)
        ]
        both_accepted = all(d.status_code == 200 and d.json()["accepted"] for d in alone)

        async def together() -> list:
            return await asyncio.gather(
                *(self._change(order, b, h) for b, h in zip(bodies, (self.web, self.app), strict=True))
            )

        answers = self.run(together())
        codes = sorted(a.status_code for a in answers)
        assert codes.count(200) <= 1, [a.text for a in answers]
        now = self.run(self._order(tracked.id))
        if both_accepted:
            assert codes == [200, 412], [a.text for a in answers]
            loser = next(a for a in answers if a.status_code == 412)
            assert loser.json()["current_version"] == now["version"] == order["version"] + 1
            event("concurrent: one won")
        for body, answer in zip(bodies, answers, strict=True):
            if answer.status_code == 200:
                self._settled(tracked, order, body, answer)
            else:
                assert answer.status_code in (409, 412, 422), answer.text
        if 200 not in codes:
            assert now["version"] == order["version"]

    # --- invariants -------------------------------------------------------------------------------

    @invariant()
    def stock_units_and_money_agree(self) -> None:
        if not hasattr(self, "shop"):
            return
        self.clock.advance(timedelta(seconds=1))
        problems = self.run(lifecycle_violations(self.db)) + self.run(event_violations(self.db))
        assert problems == [], problems
        for tracked in self.orders:
            order = self.run(self._order(tracked.id))
            facing = [f for f in order["fulfillment_orders"] if f["method"] != "transfer"]
            for ln in order["lines"]:
                due = sum(
                    fl["quantity"] - fl["quantity_cancelled"] - fl["quantity_handed_over"]
                    for f in facing
                    for fl in f["lines"]
                    if fl["order_line_id"] == ln["id"]
                )
                accounted = ln["quantity_fulfilled"] + ln["quantity_cancelled"] + due + ln["quantity_unsourced"]
                assert ln["quantity"] == accounted, (ln, due, order["fulfillment_orders"])
            assert order["subtotal"] == tracked.subtotal, (order["subtotal"], tracked)
            if not tracked.cancelled_whole:
                priced = sum((ln["quantity"] - ln["quantity_cancelled"]) * ln["unit_price"] for ln in order["lines"])
                assert order["subtotal"] == priced, order["lines"]
            assert order["total"] == order["subtotal"]  # no shipping, tax or discount here

    # --- through the API --------------------------------------------------------------------------

    def _settled(self, tracked: Tracked, order: dict, actions: list[dict], r: Any, *, by: str = "channel") -> None:
        """What an answer to a change on ``order`` means for the model."""
        if r.status_code == 200:
            after = r.json()["order"]
            assert after["version"] == order["version"] + 1
            assert r.headers["ETag"] == f'"{after["version"]}"'
            tracked.subtotal = subtotal_after(order, actions)
            assert after["subtotal"] == tracked.subtotal, (actions, order["lines"], after["lines"])
            tracked.cancelled_whole |= any(a["type"] == "cancel_order" for a in actions)
            event(f"{by} change applied: " + ",".join(sorted({a["type"] for a in actions})))
        elif r.status_code == 409:
            problem = r.json()
            assert problem["type"] == BASE + "change-refused", problem
            assert [a["index"] for a in problem["actions"]] == list(range(len(actions)))
            assert not all(a["accepted"] for a in problem["actions"])
            event(f"{by} change refused")
        else:
            assert r.status_code == 422, r.text
            event(f"{by} change: 422")

    async def _post(self, path: str, body: Any, headers: dict) -> Any:
        return await self.shop.client.post(path, json=body, headers=headers)

    async def _order(self, order_id: str) -> dict:
        r = await self.shop.client.get(f"/v1/orders/{order_id}", headers=self.shop.admin)
        assert r.status_code == 200, r.text
        return r.json()

    async def _change(
        self, order: dict, actions: list[dict], headers: dict, *, version: int | None = None, dry: bool = False
    ) -> Any:
        h = {**headers, "If-Match": f'"{order["version"] if version is None else version}"'}
        url = f"/v1/orders/{order['id']}/changes" + ("?dry_run=true" if dry else "")
        return await self.shop.client.post(url, json={"actions": actions}, headers=h)

    async def _hand_over(self, fo: dict) -> None:
        """Everything ready handed over with the customer's code; the counter takes the money when
        asked (the order carried no payment)."""
        body: dict[str, Any] = {"code": await pickup_code(self.db, fo["id"])}
        path = f"/v1/fulfillments/{fo['id']}/handover"
        r = await self._post(path, body, self.store_staff)
        if r.status_code == 422 and r.json()["type"].endswith("/tender-required"):
            due = r.json()["context"]["amount_due"]
            body["tender"] = {"amount": due, "method": "cash", "reference": "till-1"}
            r = await self._post(path, body, self.store_staff)
        assert r.status_code == 200, r.text


def test_random_orders_store_steps_and_changes_keep_every_unit_and_price(database_url, redis_url):
    run_machine(ChangeMachine, database_url, redis_url, examples=15, steps=30)
