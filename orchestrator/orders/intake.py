"""Placing an order: one transaction, six round trips. Retried on fresh numbers when another
transaction moved the stock first or took the same channel order reference.

The one place the flow crosses capabilities: customers (identify, find or create), sourcing
(plan), inventory (lock and reserve), idempotency (claim, record). Its reads and writes are
hand-written (``orders/intake_sql.py``, fed typed rows): intake is the hot path. Everything else
about an order (its transitions, cancellation) goes through the ORM.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.customers import sql as customers_sql
from orchestrator.customers.merges import merged_or_suggested
from orchestrator.customers.model import AS_SET_UP_BY_DEFAULT, CustomerDetails, CustomerRecord, Matching, identify
from orchestrator.inventory.stock_sql import lock_stock
from orchestrator.order_record.aggregate import load_order
from orchestrator.order_record.numbers import new_order_number
from orchestrator.order_record.status import OrderStatus
from orchestrator.order_record.timeline import OrderRef, event_rows
from orchestrator.orders import intake_rows
from orchestrator.orders import intake_sql as sql
from orchestrator.orders.commands import Placed, PlaceOrder
from orchestrator.orders.views import view_of
from orchestrator.platform import idempotency
from orchestrator.platform.actors import Actor
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import (
    DATABASE_ERRORS,
    RetryOnFreshRead,
    UnitOfWork,
    constraint_name,
    fetch,
    is_unique_violation,
)
from orchestrator.platform.errors import InvalidRequest, LocationLacksCapability, UnknownLocation, UnknownSku
from orchestrator.platform.events import EventType, OrderEventDraft
from orchestrator.platform.idempotency import IdempotencyClaim
from orchestrator.platform.money import OrderTotals, check_currency, check_subtotal, check_totals
from orchestrator.sourcing.candidates import LocationRecord, Sourced, shortfalls_of, source_widely, store_candidate
from orchestrator.sourcing.decisions import decision_row
from orchestrator.sourcing.engine import plan_sourcing
from orchestrator.sourcing.model import (
    LineDemand,
    PickupShortfall,
    Rule,
    SourcingProfile,
    SourcingRequest,
    profile_from_row,
)
from orchestrator.sourcing.reservation import materialise, reserve_check

# Unique constraints two concurrent placements can both pass the checks for; the loser retries
# and then finds the winner's order (or customer: ``customers_sql.RACED``).
RACED_CONSTRAINTS = customers_sql.RACED | {"uq_orders_channel_ref", "orders_number_key", "idempotency_keys_pkey"}


class DuplicateOrder(RetryOnFreshRead):
    """Another request inserted the same channel order (or drew the same number) first: the next
    attempt finds it."""


class _Answered(msgspec.Struct):
    """What a stored answer says about its order (all a replay needs of it)."""

    id: uuid.UUID
    version: int


async def place_order(
    uow: UnitOfWork,
    cmd: PlaceOrder,
    actor: Actor,
    clock: Clock,
    *,
    claim: IdempotencyClaim | None,
    matching: Matching = AS_SET_UP_BY_DEFAULT,
) -> Placed:
    """Create the order, or answer with the existing one for the same channel reference, or
    replay the stored answer for the same idempotency key.

    The entry point runs it through ``db.run(committing(...))``, which retries it when the stock
    moved (``StockMoved``) or another request took the same reference (``DuplicateOrder``); the
    entry point answers stock still moving once the attempts are spent as ``InsufficientStock``.
    Customers the order shows to be one person merge or are suggested to (``matching``)."""
    subtotal = check_subtotal((line.quantity, line.unit_price) for line in cmd.lines)
    totals = check_totals(subtotal, cmd.shipping_total, cmd.tax_total, cmd.discount_total)
    customer = identify(cmd.customer, matching.phone_region)
    currency = check_currency(cmd.currency)
    if not cmd.lines:
        raise InvalidRequest("an order needs at least one line", field="lines")
    if not cmd.method.is_pickup and cmd.destination is None and cmd.address is None:
        raise InvalidRequest("a shipment needs an address", field="fulfillment.address")
    if cmd.method.is_pickup and not cmd.location:
        raise InvalidRequest(f"{cmd.method.value} needs a location", field="fulfillment.location")
    checked = _Checked(cmd, customer, currency, totals, matching.auto_merge)
    try:
        return await _place(uow, checked, actor, clock, claim)
    except DATABASE_ERRORS as exc:
        if is_unique_violation(exc) and constraint_name(exc) in RACED_CONSTRAINTS:
            raise DuplicateOrder() from exc
        raise


@dataclass(frozen=True, slots=True)
class _Checked:
    """The command once validated: the customer's identity normalised, the currency and the
    totals checked."""

    cmd: PlaceOrder
    customer: CustomerDetails
    currency: str
    totals: OrderTotals
    auto_merge: bool = False


@dataclass
class IntakeContext:
    """What the first query of intake found."""

    products: dict[str, int]
    store: dict[str, Any] | None
    profile: SourcingProfile
    customer: CustomerRecord | None
    others: list[tuple[uuid.UUID, str, str]]  # (customer id, kind, value): identities others own


async def _place(
    uow: UnitOfWork, checked: _Checked, actor: Actor, clock: Clock, claim: IdempotencyClaim | None
) -> Placed:
    session = uow.session
    cmd, customer = checked.cmd, checked.customer
    now = clock.now()
    read = sql.INTAKE.args(
        idem_lock=idempotency.lock_id(claim.principal, claim.key) if claim else 0,
        idem_principal=claim.principal if claim else None,
        idem_key=claim.key if claim else None,
        channel=cmd.channel,
        channel_order_ref=cmd.channel_order_ref,
        skus=sorted({line.sku for line in cmd.lines}),
        pickup_location=cmd.location if cmd.method.is_pickup else None,
        email=customer.email,
        phone=customer.phone,
        loyalty_id=customer.loyalty_id,
        account=customer.account,
        name=customer.name,
        new_customer_id=uuid.uuid4(),
        now=now,
    )
    held, stored, existing, products_json, store_json, profile_json, who, others = (
        await fetch(session, sql.INTAKE.text, *read)
    )[0]
    if claim is not None:
        replay = idempotency.replay_of(claim, held, idempotency.stored_answer(stored))
        if replay is not None:
            if replay.status_code >= 400:  # a refused payment's problem (``orders/paid_intake.py``)
                return Placed(None, 0, replay.body, created=False, replayed=True, status_code=replay.status_code)
            answered = msgspec.json.decode(replay.body, type=_Answered)
            created = replay.status_code == 201
            return Placed(answered.id, answered.version, replay.body, created, True, replay.status_code)

    if existing is not None:
        view = view_of(await load_order(session, existing, actor), now)
        body = msgspec.json.encode(view)
        if claim is not None:
            await idempotency.complete(session, claim, 200, body, now)
        return Placed(view.id, view.version, body, created=False)

    context = IntakeContext(
        products=_as_json(products_json),
        store=_as_json(store_json),
        profile=profile_from_row(_as_json(profile_json)),
        customer=CustomerRecord(*who) if who else None,
        others=[(uuid.UUID(o[0]), o[1], o[2]) for o in _as_json(others) or ()],
    )
    return await _create(session, checked, context, actor, now, claim)


async def _create(
    session: AsyncSession,
    checked: _Checked,
    context: IntakeContext,
    actor: Actor,
    now: datetime,
    claim: IdempotencyClaim | None,
) -> Placed:
    cmd = checked.cmd
    products = context.products
    unknown = sorted({ln.sku for ln in cmd.lines if ln.sku not in products})
    if unknown:
        raise UnknownSku(f"unknown sku: {', '.join(unknown)}", field="lines", skus=unknown)
    store = _pickup_store(cmd, context.store) if cmd.method.is_pickup else None
    profile = context.profile

    order_id = uuid.uuid4()
    line_ids = [uuid.uuid4() for _ in cmd.lines]
    request = SourcingRequest(
        lines=tuple(LineDemand(str(line_ids[i]), ln.sku, ln.quantity, ln.unit_price) for i, ln in enumerate(cmd.lines)),
        method=cmd.method,
        pickup_location=store.code if store else None,
        destination=cmd.destination,
    )
    sourced, locked = await _source(session, request, profile, products, store)
    if not sourced.plan.complete:
        raise shortfalls_of(sourced, request)

    decision = decision_row(
        order_id=order_id,
        trigger="placement",
        channel=cmd.channel,
        profile=profile,
        request=request,
        plan=sourced.plan,
        now=now,
    )
    planned = materialise(
        sourced,
        order_id=order_id,
        method=cmd.method,
        order_lines={str(line_ids[i]): (line_ids[i], products[ln.sku], ln.sku) for i, ln in enumerate(cmd.lines)},
        ship_address=cmd.address,
        decision_id=decision["id"],
        now=now,
    )
    if not locked:
        await reserve_check(session, planned)
    if context.customer is None:  # a first order of the same person created them first: find them
        raise DuplicateOrder()
    who, suggestions = await merged_or_suggested(session, context.customer, context.others, checked.auto_merge, now)

    number = new_order_number()
    drafts = [
        OrderEventDraft(
            EventType.ORDER_PLACED,
            {
                "number": number,
                "channel": cmd.channel,
                "channel_order_ref": cmd.channel_order_ref,
                **checked.totals.fields(),
                "currency": checked.currency,
                "method": cmd.method.value,
                "lines": [{"sku": ln.sku, "quantity": ln.quantity} for ln in cmd.lines],
            },
        ),
        OrderEventDraft(
            EventType.ORDER_SOURCED,
            {
                "decision_id": str(decision["id"]),
                "rule": sourced.plan.rule.value,
                "locations": sourced.plan.locations,
                "fulfillment_orders": [str(i) for i in planned.fulfillment_ids()],
            },
        ),
    ]
    order = intake_rows.OrderRow(
        id=order_id,
        number=number,
        channel=cmd.channel,
        channel_order_ref=cmd.channel_order_ref,
        holds_channel_ref=True,
        customer_id=who.id,
        currency=checked.currency,
        subtotal=checked.totals.subtotal,
        shipping_total=checked.totals.shipping_total,
        tax_total=checked.totals.tax_total,
        discount_total=checked.totals.discount_total,
        status=(OrderStatus.PENDING_PAYMENT if cmd.awaiting_payment else OrderStatus.RECEIVED).value,
        attention_reason=None,
        action_options=None,
        action_deadline=None,
        fulfillment_method=cmd.method.value,
        pickup_location_id=_pickup_location_id(sourced, store),
        ship_address=cmd.address,
        sourcing_profile_version=profile.version,
        version=1,
        last_event_seq=len(drafts),
        created_at=now,
        updated_at=now,
    )
    lines = intake_rows.order_line_rows(order_id, line_ids, cmd.lines, products)
    events, messages = event_rows(OrderRef(order_id, number, cmd.channel), 1, drafts, actor, now, version=1)
    rows = intake_rows.new_order_rows(order, lines, decision, planned, events, messages)
    body = msgspec.json.encode(rows.view(who, sourced.location_ids, now))
    write = sql.write_order_args(rows, planned.changes, claim, body, actor.label, now, suggestions)
    await fetch(session, sql.WRITE_ORDER.text, *write)
    return Placed(order_id, order.version, body, created=True)


async def _source(
    session: AsyncSession,
    request: SourcingRequest,
    profile: SourcingProfile,
    products: dict[str, int],
    store: LocationRecord | None,
) -> tuple[Sourced, bool]:
    """A pickup locks the store's rows first and plans on the locked numbers: no race, one query.
    Anything else (ship, or a store that falls short) plans on a snapshot and re-checks under lock."""
    if store is not None:
        # A short store may take transfers or hand the pickup to another store, whose rows must be
        # locked in one canonical order: the savepoint lets go of the store's rows first (else
        # deadlocks). Asking the customer places nothing elsewhere.
        widens = profile.on_pickup_shortfall is not PickupShortfall.ASK_CUSTOMER
        savepoint = await session.begin_nested() if widens else None
        keys = [(store.id, pid) for pid in products.values()]
        positions = await lock_stock(session, keys)
        by_product = {pid: sku for sku, pid in products.items()}
        available = {by_product[k[1]]: p.available for k, p in positions.items()}
        plan = plan_sourcing(request, [store_candidate(store, available)], profile)
        if plan.complete:
            prep = {store.code: store.prep_minutes}
            return Sourced(plan, {store.code: store.id}, products, prep, profile.transfer_hours), True
        if savepoint is not None:
            await savepoint.rollback()
    # The store alone was just planned on (under lock): go straight to every location.
    return await source_widely(session, request, profile, products, store=store), False


def _pickup_location_id(sourced: Sourced, store: LocationRecord | None) -> int | None:
    """The store the customer collects from: the one chosen, unless ``move`` placed it elsewhere."""
    if store is None:
        return None
    if sourced.plan.rule is Rule.PICKUP_MOVED:
        return sourced.location_ids[sourced.plan.locations[0]]
    return store.id


def _as_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _pickup_store(cmd: PlaceOrder, row: dict[str, Any] | None) -> LocationRecord:
    if row is None or not row["active"]:
        raise UnknownLocation(f"unknown location {cmd.location}", field="fulfillment.location")
    store = LocationRecord.from_row(row)
    if cmd.method.capability not in store.capabilities:
        raise LocationLacksCapability(
            f"{cmd.location} does not offer {cmd.method.value}",
            field="fulfillment.location",
            capabilities=sorted(store.capabilities),
        )
    return store
