"""Random sequences of paid orders against the service over HTTP and the Stripe-shaped test
server: card payments with and without multicapture, declines, pay in store (the tender at
handover, with change), pickups handed over in parts, shipments split across stores, cancels,
refunds (some above what is refundable), the worker's capture jobs (run twice: a repeated job
moves nothing), Stripe's webhooks delivered late, twice and out of order, and the authorisation
running out (the warning a day before, then the expiry, as Stripe cancels the intent) — and after
every step the money invariants (``tests/integration/money_invariants``:
captured ≤ authorised, refunded ≤ captured, Stripe moved exactly what we recorded, goods handed
over are paid or queued for capture, nothing captured for goods not handed over), the stock
invariants and the event schemas.

Hypothesis drives a plain (sync) state machine; each rule runs its coroutine to completion on a
private event loop where the app runs with its own ``Database`` (as ``test_stateful_inventory``).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import ClassVar

from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import (
    initialize,
    invariant,
    precondition,
    rule,
)

from orchestrator.orders import authorisation_timers
from orchestrator.payments import captures
from orchestrator.payments.stripe_gateway import StripeGateway, stripe_gateway
from tests.e2e.conftest import settings_for
from tests.e2e.http_machines import HttpMachine, run_machine
from tests.e2e.support import act, pickup_code
from tests.integration.event_schemas import event_violations
from tests.integration.invariants import lifecycle_violations
from tests.integration.money_invariants import money_violations
from tests.stripe_server.fixtures import API_KEY, WEBHOOK_SECRET, RunningServer
from tests.stripe_server.webhooks import deliver_async

# Weighted: most orders pay, one in eight is declined.
CARDS = ("pm_card_visa",) * 3 + ("pm_card_visa_multicapture",) * 2 + ("pos",) * 2 + ("pm_card_visa_chargeDeclined",)
PICKUP_SKUS = ("A", "B")
SHIP_SKUS = ("A", "C")  # C only at S2: a shipment of A and C splits across two stores
LINES = st.lists(
    st.tuples(st.sampled_from(("A", "B", "C")), st.integers(1, 3)), min_size=1, max_size=2, unique_by=lambda x: x[0]
)
PICK = st.integers(0, 2**16)
DONE = ("picked_up", "shipped", "delivered", "cancelled", "expired", "rejected")


@dataclass
class Tracked:
    id: str
    method: str
    fulfillments: list[str]
    handed: dict[str, int] = field(default_factory=dict)  # fulfillment line id → units handed over
    cancelled: bool = False


def chosen(items: list, pick: int):  # noqa: ANN201 - one of ``items``, by a drawn number
    return items[pick % len(items)]


class MoneyMachine(HttpMachine):
    stripe: ClassVar[RunningServer]

    def __init__(self) -> None:
        super().__init__()
        self.orders: list[Tracked] = []
        self.gateway: StripeGateway | None = None

    @initialize()
    def world(self) -> None:
        self.stripe.state.reset()
        # Stripe's clock is ours: authorisations lapse when our (manual) clock says so.
        self.stripe.state.ledger.clock = lambda: self.clock.now().timestamp()
        self.expired = False
        self.run(self._world())

    async def _world(self) -> None:
        config = settings_for(
            self.database_url,
            self.redis_url,
            stripe_api_key=API_KEY,
            stripe_api_base=self.stripe.url,
            stripe_webhook_secret=WEBHOOK_SECRET,
        )
        self.shop = await self.serve(config)
        self.gateway = stripe_gateway(API_KEY, api_base=self.stripe.url)
        self.stack.push_async_callback(self.gateway.aclose)
        await self.shop.location("S1", 52.52, 13.40)
        await self.shop.location("S2", 52.50, 13.30, capabilities=("ship",))
        for sku in ("A", "B", "C"):
            await self.shop.product(sku)
        for code, sku in (("S1", "A"), ("S1", "B"), ("S2", "C")):
            await self.shop.stock(code, sku, 60)
        self.staff = await self.shop.staff("S1", "S2")

    # --- rules ------------------------------------------------------------------------------------

    @rule(
        lines=LINES,
        ship=st.booleans(),
        card=st.sampled_from(CARDS),
        price=st.sampled_from((1250, 333, 1250, 0)),
        extras=st.tuples(st.sampled_from((0, 499)), st.sampled_from((0, 77)), st.sampled_from((0, 100))),
    )
    def place(
        self, lines: list[tuple[str, int]], ship: bool, card: str, price: int, extras: tuple[int, int, int]
    ) -> None:
        ship = ship and card != "pos"  # paid in store: at the pickup counter
        skus = SHIP_SKUS if ship else PICKUP_SKUS
        lines = [(s, q) for s, q in lines if s in skus] or [(skus[0], 1)]
        subtotal = sum(q for _, q in lines) * price
        shipping, tax, discount = extras
        body = {
            **self.shop.order_body(lines, method="ship" if ship else "pickup", price=price),
            "shipping_total": shipping,
            "tax_total": tax,
            "discount_total": min(discount, subtotal + shipping + tax),
            "payment": {"provider": "pos"} if card == "pos" else {"provider": "stripe", "payment_method": card},
        }
        r = self.run(self.shop.place(body))
        if subtotal + shipping + tax - body["discount_total"] == 0 and card != "pos":
            # Stripe takes no payment of nothing: refused before anything is reserved.
            assert r.status_code == 422, r.text
            event("nothing to pay")
            return
        if card.endswith("Declined"):
            assert r.status_code == 402, r.text
            event("declined")
            return
        assert r.status_code == 201, r.text
        order = r.json()
        assert order["payment"]["status"] == ("pending" if card == "pos" else "authorised"), order["payment"]
        event("placed")
        self.orders.append(
            Tracked(order["id"], "ship" if ship else "pickup", [f["id"] for f in order["fulfillment_orders"]])
        )

    def _open(self) -> list[Tracked]:
        return [o for o in self.orders if not o.cancelled]

    # Rules draw plain numbers and pick by them (``PICK``) rather than drawing from what the service
    # answered: every replay of a sequence draws the same way (no FlakyStrategyDefinition), even
    # where the answers differ in ids or timestamps.
    @precondition(lambda self: self._open())
    @rule(pick=PICK, which=PICK, share=st.integers(1, 100), change=st.sampled_from((0, 0, 150)))
    def move_goods(self, pick: int, which: int, share: int, change: int) -> None:
        order = chosen(self._open(), pick)
        fo = self.run(self._fulfillment(chosen(order.fulfillments, which)))
        if fo["status"] in DONE:
            return
        if order.method == "ship":
            self.run(self._ship(fo))
            return
        if fo["status"] != "ready_for_pickup":
            fo = self.run(self._ready(fo))
        line = fo["lines"][0]
        left = line["quantity"] - line["quantity_handed_over"] - line["quantity_cancelled"]
        if left <= 0:
            return
        quantity = max(1, left * share // 100)
        self.run(self._hand_over(fo, line["id"], quantity, change))
        event("handed over in part" if quantity < left else "handed over")

    @precondition(lambda self: self._open())
    @rule(pick=PICK)
    def cancel(self, pick: int) -> None:
        """Cancels whatever is still open, after a partial handover too; what was handed over
        stays fulfilled and no money moves back. Only an order with nothing open is refused."""
        order = chosen(self._open(), pick)
        before = self.run(self._order(order.id))
        still_open = any(ln["quantity"] - ln["quantity_fulfilled"] - ln["quantity_cancelled"] for ln in before["lines"])
        still_open = still_open or any(
            f["status"] not in DONE for f in before["fulfillment_orders"] if f["method"] != "transfer"
        )
        r = self.run(
            self.shop.client.post(f"/v1/orders/{order.id}/cancel", json={"reason": "customer"}, headers=self.shop.admin)
        )
        if not still_open:
            assert r.status_code == 409, r.text
            event("cancel refused: nothing open")
            return
        assert r.status_code == 200, r.text
        order.cancelled = True
        after = r.json()
        kept = sum(ln["quantity_fulfilled"] for ln in before["lines"])
        for was, now in zip(before["lines"], after["lines"], strict=True):
            assert now["quantity_fulfilled"] == was["quantity_fulfilled"], "a cancel took back handed-over goods"
            assert now["quantity_cancelled"] == now["quantity"] - now["quantity_fulfilled"], now
        money = [(p["amount_captured"], p["amount_refunded"]) for p in self.run(self._order(order.id))["payments"]]
        assert money == [(p["amount_captured"], p["amount_refunded"]) for p in before["payments"]]
        assert after["status"] in (("completed" if kept else "cancelled"), "needs_attention"), after["status"]
        event("cancelled the rest" if kept else "cancelled")

    @rule()
    def run_capture_jobs(self) -> None:
        before = len(self.stripe.state.ledger.events)
        self.run(captures.sweep(self.db, self.gateway, self.clock))
        after = len(self.stripe.state.ledger.events)
        # The same jobs again: every queued operation was applied, nothing is called twice.
        assert self.run(captures.sweep(self.db, self.gateway, self.clock)) == 0
        assert len(self.stripe.state.ledger.events) == after
        if after > before:
            event("captured or voided")

    @precondition(lambda self: self.orders)
    @rule(
        pick=PICK,
        share=st.integers(1, 100),
        over=st.booleans(),
        reason=st.sampled_from(("requested_by_customer", "damaged")),
    )
    def refund(self, pick: int, share: int, over: bool, reason: str) -> None:
        """Part of what the refund takes from (the latest payment that captured money) back, or
        one more than it holds: refused, nothing moves."""
        order = chosen(self.orders, pick)
        payments = self.run(self._order(order.id))["payments"]
        target = next((p for p in reversed(payments) if p["amount_captured"] > 0), None)
        refundable = target["amount_captured"] - target["amount_refunded"] if target else 0
        amount = refundable + 1 if over or not refundable else max(1, refundable * share // 100)
        headers = {**self.shop.admin, "Idempotency-Key": uuid.uuid4().hex}
        body = {"amount": amount, "reason": reason}
        r = self.run(self.shop.client.post(f"/v1/orders/{order.id}/refunds", json=body, headers=headers))
        if amount <= refundable:
            assert r.status_code == 201, r.text
            event("refunded")
        else:
            assert r.status_code == 422, r.text
            event("refund refused")

    @precondition(lambda self: self.expired and self._open())
    @rule(pick=PICK)
    def pay_again_by_card(self, pick: int) -> None:
        """After the authorisation ran out (some goods perhaps paid at the counter since), a new
        card pays what is still due: never again what was captured or tendered."""
        order = chosen(self._open(), pick)
        body = {"provider": "stripe", "payment_method": "pm_card_visa"}
        headers = {**self.shop.admin, "Idempotency-Key": uuid.uuid4().hex}
        r = self.run(self.shop.client.post(f"/v1/orders/{order.id}/payments", json=body, headers=headers))
        assert r.status_code in (201, 409, 422), r.text
        event(f"paid again: {r.status_code}")

    @precondition(lambda self: self.stripe.state.ledger.events)
    @rule(seed=PICK, twice=st.integers(0, 3))
    def stripe_delivers_webhooks(self, seed: int, twice: int) -> None:
        """Stripe's latest events, in any order, some twice: nothing moves again."""
        sent = self.stripe.state.ledger.events[-8:]
        shuffled = random.Random(seed)
        deliveries = sent + shuffled.choices(sent, k=twice)
        shuffled.shuffle(deliveries)
        for payload in deliveries:
            r = self.run(deliver_async(self.shop.client, "/v1/webhooks/stripe", payload, WEBHOOK_SECRET))
            assert r.status_code == 200, r.text
        event("webhooks delivered")

    @precondition(lambda self: not self.expired and self.orders)
    @rule()
    def authorisations_run_out(self) -> None:
        """A day before the authorisations lapse the worker warns (and captures what was handed
        over); then they lapse, and Stripe cancels what is left of each intent."""
        self.expired = True
        for ahead in (timedelta(days=6, hours=1), timedelta(days=1)):
            self.clock.advance(ahead)
            self.run(authorisation_timers.sweep(self.db, self.gateway, self.clock, timedelta(hours=24)))
            self.run(captures.sweep(self.db, self.gateway, self.clock))
        ledger = self.stripe.state.ledger
        window = ledger.capture_window or 7 * 24 * 3600
        for intent in list(ledger.intents.values()):
            if intent["status"] == "requires_capture" and intent["created"] + window <= ledger.now():
                ledger.cancel(intent["id"], {"cancellation_reason": "automatic"})
        event("authorisations ran out")

    # --- invariants -------------------------------------------------------------------------------

    @invariant()
    def money_stock_and_events_agree(self) -> None:
        if not hasattr(self, "shop"):
            return
        # Steps a second apart: rows of one step never tie on their timestamps with the next's,
        # so "the latest payment" is the same in every replay.
        self.clock.advance(timedelta(seconds=1))
        problems = self.run(money_violations(self.db, self.stripe.state.ledger))
        problems += self.run(lifecycle_violations(self.db))
        problems += self.run(event_violations(self.db))
        assert problems == [], problems

    # --- steps through the API --------------------------------------------------------------------

    async def _order(self, order_id: str) -> dict:
        r = await self.shop.client.get(f"/v1/orders/{order_id}", headers=self.shop.admin)
        assert r.status_code == 200, r.text
        return r.json()

    async def _fulfillment(self, fo_id: str) -> dict:
        r = await self.shop.client.get(f"/v1/fulfillments/{fo_id}", headers=self.staff)
        assert r.status_code == 200, r.text
        return r.json()

    async def _advance(self, fo: dict, last: str) -> dict:
        """Accept, start picking, pick every unit still to pick, then ``last`` (ready or pack)."""
        steps = {"pending": "accept", "accepted": "start-picking", "picking": last, "picked": last}
        while fo["status"] in steps:
            action = steps[fo["status"]]
            picks = [
                (ln["id"], ln["quantity"] - ln["quantity_picked"] - ln["quantity_cancelled"]) for ln in fo["lines"]
            ]
            if fo["status"] == "picking" and any(q > 0 for _, q in picks):
                body = {"lines": [{"line_id": i, "quantity": q} for i, q in picks if q > 0]}
                fo = await act(self.shop, self.staff, fo["id"], "pick", body)
                continue
            fo = await act(self.shop, self.staff, fo["id"], action)
            if action == last:
                break
        return fo

    async def _ready(self, fo: dict) -> dict:
        return await self._advance(fo, "ready")

    async def _ship(self, fo: dict) -> None:
        """Pick, pack and ship; a parcel whose card authorisation ran out waits for a payment."""
        fo = await self._advance(fo, "pack")
        body = {"carrier": "DHL", "tracking_number": uuid.uuid4().hex[:8]}
        r = await self.shop.client.post(f"/v1/fulfillments/{fo['id']}/ship", json=body, headers=self.staff)
        if r.status_code == 409 and r.json()["type"].endswith("/payment-needed"):
            event("parcel waits for a payment")
            return
        assert r.status_code == 200, r.text
        event("shipped")

    async def _hand_over(self, fo: dict, line_id: str, quantity: int, change: int) -> None:
        """The handover; when the counter must take the money (pay in store, or the card's
        authorisation ran out), the tender the first answer asks for, in cash, ``change`` over."""
        body = {"code": await pickup_code(self.db, fo["id"]), "lines": [{"line_id": line_id, "quantity": quantity}]}
        r = await self.shop.client.post(f"/v1/fulfillments/{fo['id']}/handover", json=body, headers=self.staff)
        if r.status_code == 422 and r.json()["type"].endswith("/tender-required"):
            due = r.json()["context"]["amount_due"]
            tender = {"amount": due + change, "method": "cash", "reference": "till-1"}
            r = await self.shop.client.post(
                f"/v1/fulfillments/{fo['id']}/handover", json={**body, "tender": tender}, headers=self.staff
            )
            event("tendered")
        assert r.status_code == 200, r.text


def test_random_paid_orders_handovers_cancels_and_captures_keep_every_money_invariant(
    database_url, redis_url, stripe_server
):
    run_machine(MoneyMachine, database_url, redis_url, examples=20, steps=20, stripe=stripe_server)
