"""Changing an order from any channel (``POST /v1/orders/{id}/changes``): the key's stored answer
replayed, the order locked and its version checked, the change planned by ``change_rules`` (what
is taken away or kept) and ``placement_rules`` (what goes elsewhere), then written in the entry
point's one transaction: the order's fields and new lines, the give-backs (released, restocked),
the units placed on the stock they freed (``change_sourcing``), the ``OrderChange`` record, the
timeline and outbox events and the key's answer. The dry run writes exactly the same and is
rolled back, so it answers what the applied change does. The payment follows by the capture
rule the written lines feed (less is captured later, a void when nothing is left); a higher
total of a card order is authorised before the change commits (``change_payment``)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import select

from orchestrator.catalogue.tables import Location, Product
from orchestrator.fulfillment.persistence import order_snapshot, persist
from orchestrator.fulfillment.service import LifecycleSettings
from orchestrator.fulfillment.stock_moves import StockLedger
from orchestrator.inventory.stock_sql import lock_stock
from orchestrator.order_record.aggregate import OrderAggregate, load_missing_sites, load_order
from orchestrator.order_record.states import OPEN_STATES, Method, Status
from orchestrator.order_record.tables import OrderChange, OrderLine
from orchestrator.orders import change_rules, change_views
from orchestrator.orders.change_actions import STAFF_ACTIONS
from orchestrator.orders.change_sourcing import place_asks
from orchestrator.orders.views import OrderView, view_of
from orchestrator.payments.tables import Payment
from orchestrator.platform import idempotency
from orchestrator.platform.actors import Actor
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import UnitOfWork
from orchestrator.platform.errors import ChangeRefused, Forbidden, PreconditionRequired, UnknownSku, VersionMismatch
from orchestrator.platform.events import EventType, OrderEventDraft
from orchestrator.platform.idempotency import IdempotencyClaim


@dataclass(frozen=True, slots=True)
class ChangeRequest:
    order_id: uuid.UUID
    actions: tuple[change_rules.ChangeAction, ...]
    expected_version: int | None
    actor: Actor
    clock: Clock
    lifecycle: LifecycleSettings
    claim: IdempotencyClaim | None = None


class ChangeApplied(msgspec.Struct, kw_only=True):
    change_id: uuid.UUID
    order: OrderView


@dataclass(frozen=True, slots=True)
class Answer:
    """What the controller sends: the body as stored under the key (a replay sends it again)."""

    status: int
    body: bytes
    version: int
    replayed: bool = False


async def preview(uow: UnitOfWork, request: ChangeRequest) -> dict[str, Any]:
    """The dry run: the change written exactly as ``apply`` writes it, described, and left for the
    caller to roll back (it never commits): what it answers is what the applied change does when
    nothing changed in between, reservations and all. A refused change is described, not raised."""
    loaded, plan = await _planned(uow, request)
    if not plan.accepted:
        return change_views.describe(loaded.aggregate, loaded.state, plan, [])
    try:
        placed = await _write(uow, request, loaded, plan, uuid.uuid4())
    except ChangeRefused as refused:
        decisions = tuple(change_rules.Decision(**d) for d in refused.context["actions"])
        refused_plan = change_rules.ChangePlan(decisions, plan.totals_before, plan.totals_before)
        return {**change_views.describe(loaded.aggregate, loaded.state, refused_plan, []), **_shortfalls(refused)}
    return change_views.describe(loaded.aggregate, loaded.state, plan, placed)


async def plan(uow: UnitOfWork, request: ChangeRequest) -> change_rules.ChangePlan:
    """The change's plan on the order as it is, nothing written (what its payment depends on)."""
    return (await _planned(uow, request))[1]


async def _planned(uow: UnitOfWork, request: ChangeRequest) -> tuple[_Loaded, change_rules.ChangePlan]:
    loaded = await _load(uow, request)
    ctx = request.lifecycle.context(request.actor, request.clock.now())
    return loaded, change_rules.plan_change(loaded.state, request.actions, ctx)


async def apply(
    uow: UnitOfWork, request: ChangeRequest, *, also: Callable[[UnitOfWork], Awaitable[None]] | None = None
) -> Answer:
    """The change, written; a refused one raises ``ChangeRefused`` (nothing written). ``also``
    writes what the change brings with it in the same transaction (its new payment)."""
    session = uow.session
    if request.claim is not None and (stored := await idempotency.claim(session, request.claim)) is not None:
        version = msgspec.json.decode(stored.body, type=_Versioned).order.version
        return Answer(stored.status_code, stored.body, version, replayed=True)
    loaded, plan = await _planned(uow, request)
    now = request.clock.now()
    if not plan.accepted:
        raise ChangeRefused(
            "the change cannot be applied as a whole; nothing was changed",
            actions=[d.as_dict() for d in plan.decisions],
        )
    change_id = uuid.uuid4()
    version_before = loaded.aggregate.order.version
    placed = await _write(uow, request, loaded, plan, change_id)
    if also is not None:
        await also(uow)
    order = loaded.aggregate.order
    after = change_views.describe(loaded.aggregate, loaded.state, plan, placed)
    session.add(
        OrderChange(
            id=change_id,
            order_id=order.id,
            actor_kind=str(request.actor.kind),
            actor_id=request.actor.id,
            channel=request.actor.channel,
            actions=[change_views.action_dict(a) for a in request.actions],
            before=change_views.totals_dict(plan.totals_before),
            after={**change_views.totals_dict(plan.totals_after), "lines": after["lines"]},
            decisions={"fulfillments": after["fulfillments"], "sourcing": after["sourcing"]},
            version_before=version_before,
            version_after=order.version,
            created_at=now,
        )
    )
    await load_missing_sites(session, loaded.aggregate)
    body = msgspec.json.encode(ChangeApplied(change_id=change_id, order=view_of(loaded.aggregate, now)))
    if request.claim is not None:
        await idempotency.complete(session, request.claim, 200, body, now)
    await session.flush()
    return Answer(200, body, order.version)


async def _write(
    uow: UnitOfWork, request: ChangeRequest, loaded: _Loaded, plan: change_rules.ChangePlan, change_id: uuid.UUID
) -> list[dict[str, Any]]:
    """The plan's rows: the order's fields and new lines, the give-backs, then the asks placed on
    the stock they freed, and the ``order.changed`` event. Returns what was placed."""
    session = uow.session
    aggregate = loaded.aggregate
    order = aggregate.order
    now = request.clock.now()
    order.subtotal = plan.totals_after.subtotal
    order.discount_total = plan.totals_after.discount_total
    fields = plan.fields
    if fields.address is not None:
        order.ship_address = dict(fields.address)
    if fields.method is not None:
        order.fulfillment_method = fields.method.value
    if fields.pickup_location is not None:
        order.pickup_location_id = loaded.state.sites[fields.pickup_location].id
    aggregate.codes.update({site.id: code for code, site in loaded.state.sites.items()})
    _grow_lines(session, aggregate, plan, loaded.products)
    await session.flush()
    if plan.asks:
        await _lock_stock_first(session, loaded, plan)
    placed: list[dict[str, Any]] = []

    async def then_place() -> list[OrderEventDraft]:
        events, done = await place_asks(session, aggregate, plan, loaded.products, request.actor, now)
        placed.extend(done)
        return events

    changed = OrderEventDraft(
        EventType.ORDER_CHANGED,
        {
            "change_id": str(change_id),
            "actions": [a.type for a in request.actions],
            "total_before": plan.totals_before.total,
            "total_after": plan.totals_after.total,
            "currency": order.currency,
        },
    )
    await persist(
        session,
        aggregate,
        loaded.ledger,
        plan.outcomes,
        request.actor,
        now,
        order_lines=plan.order_lines,
        order_events=(*plan.events, changed),
        then_place=then_place if plan.asks else None,
    )
    return placed


async def _lock_stock_first(session: Any, loaded: _Loaded, plan: change_rules.ChangePlan) -> None:
    """The stock rows of the stores the change gives back to and places at, locked in one
    canonical pass before either happens: two changes moving pickups in opposite directions
    then queue on the first row instead of each holding one store and waiting for the other.
    (Rows of third stores a transfer draws on are locked later, when the plan names them.)"""
    aggregate = loaded.aggregate
    product_of = {ln.id: ln.product_id for ln in aggregate.lines}
    keys = {
        (fo.location_id, line.product_id)
        for fo in aggregate.fulfillments
        if Status(fo.status) in OPEN_STATES
        for line in aggregate.fulfillment_lines.get(fo.id, [])
    }
    for ask in plan.asks:
        if ask.location is not None:
            named = loaded.state.sites.get(ask.location)
            site = named.id if named is not None else _site_of(aggregate, ask.location)
            keys |= {(site, product_of[line_id]) for line_id in ask.units if line_id in product_of}
    await lock_stock(session, keys)


def _site_of(aggregate: OrderAggregate, code: str) -> int:
    return next(i for i, c in aggregate.codes.items() if c == code)


def _grow_lines(session: Any, aggregate: OrderAggregate, plan: change_rules.ChangePlan, products: dict) -> None:
    """Higher quantities on the order's lines, and the lines the change adds."""
    for line in aggregate.lines:
        line.quantity += plan.raised.get(line.id, 0)
    next_no = max((ln.line_no for ln in aggregate.lines), default=0) + 1
    for number, added in enumerate(plan.added, start=next_no):
        line = OrderLine(
            id=added.line_id,
            order_id=aggregate.order.id,
            line_no=number,
            product_id=products[added.sku],
            sku=added.sku,
            quantity=added.quantity,
            unit_price=added.unit_price,
        )
        session.add(line)
        aggregate.lines.append(line)


def _shortfalls(refused: ChangeRefused) -> dict[str, Any]:
    return {"shortfalls": refused.context.get("shortfalls", [])}


class _Order(msgspec.Struct):
    version: int


class _Versioned(msgspec.Struct):
    order: _Order


@dataclass
class _Loaded:
    aggregate: OrderAggregate
    ledger: StockLedger
    state: change_rules.OrderState
    products: dict[str, int]  # sku → product id, of the order's lines and the lines added


async def _load(uow: UnitOfWork, request: ChangeRequest) -> _Loaded:
    """The order locked (the order row, then its fulfillments; stock is locked by the ledger and
    the reservations when they apply), its version checked, and the snapshot the rules decide on,
    with the stores and skus the actions name."""
    if request.expected_version is None:
        raise PreconditionRequired("a change names the version it is based on in If-Match (the order's ETag)")
    session = uow.session
    now = request.clock.now()
    actor = request.actor
    aggregate = await load_order(session, request.order_id, actor, lock=True, granted_at=now)
    order = aggregate.order
    if actor.is_staff:
        _staff_may(request)
    if request.expected_version != order.version:
        raise VersionMismatch(request.expected_version, order.version)
    ledger = StockLedger(session, str(order.id), now)
    snapshot = await order_snapshot(aggregate, ledger)
    named = {
        a.location for a in request.actions if isinstance(a, change_rules.MovePickup | change_rules.SwitchToPickup)
    }
    sites = await _sites(session, named)
    products = {ln.sku: ln.product_id for ln in aggregate.lines}
    products.update(await _products(session, [a.sku for a in request.actions if isinstance(a, change_rules.AddLine)]))
    o = aggregate.order
    state = change_rules.OrderState(
        snapshot,
        Method(o.fulfillment_method),
        {**{ln.id: ln.unit_price for ln in aggregate.lines}, **_added_prices(request.actions)},
        o.totals,
        pickup_location=aggregate.codes.get(o.pickup_location_id) if o.pickup_location_id else None,
        address=o.ship_address,
        sites=sites,
        pays_at_counter=await _pays_at_counter(session, o.id),
    )
    change_rules.check_actions(state, request.actions)
    return _Loaded(aggregate, ledger, state, products)


def _staff_may(request: ChangeRequest) -> None:
    """Staff move a pickup to their own store, and do nothing else through a change: on their
    store's orders, or on another store's while their counter lookup's grant lives."""
    actor = request.actor
    for action in request.actions:
        if action.type not in STAFF_ACTIONS:
            raise Forbidden(f"a staff key may only {', '.join(sorted(STAFF_ACTIONS))}", action=action.type)
        if isinstance(action, change_rules.MovePickup) and action.location not in actor.locations:
            raise Forbidden("a staff key moves a pickup only to its own store", location=action.location)


async def _sites(session: Any, codes: set[str]) -> dict[str, change_rules.Site]:
    if not codes:
        return {}
    rows = await session.execute(
        select(Location.id, Location.code, Location.capabilities).where(Location.code.in_(codes), Location.active)
    )
    return {code: change_rules.Site(id_, code, frozenset(caps)) for id_, code, caps in rows.all()}


async def _products(session: Any, skus: list[str]) -> dict[str, int]:
    if not skus:
        return {}
    rows = await session.execute(select(Product.sku, Product.id).where(Product.sku.in_(skus), Product.active))
    found = dict(rows.all())
    unknown = sorted(set(skus) - set(found))
    if unknown:
        raise UnknownSku(f"unknown sku: {', '.join(unknown)}", field="actions", skus=unknown)
    return found


async def _pays_at_counter(session: Any, order_id: uuid.UUID) -> bool:
    found = await session.scalar(
        select(Payment.id)
        .where(Payment.order_id == order_id, Payment.provider == "pos", Payment.status != "failed")
        .limit(1)
    )
    return found is not None


def _added_prices(actions: Sequence[change_rules.ChangeAction]) -> dict[uuid.UUID, int]:
    return {a.line_id: a.unit_price for a in actions if isinstance(a, change_rules.AddLine)}
