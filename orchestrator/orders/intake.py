"""Placing an order: one transaction, six round trips. Retried on fresh numbers when another
transaction moved the stock first or took the same channel order reference.

The writes are hand-written (``orders/intake_sql.py``): intake is the hot path. Everything else
about an order (its transitions, cancellation) goes through the ORM.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.customers.service import normalise_details
from orchestrator.inventory.stock_sql import lock_stock
from orchestrator.orders import intake_sql as sql
from orchestrator.orders.commands import CustomerDetails, IdempotencyClaim, Placement, PlaceOrder
from orchestrator.orders.numbers import new_order_number
from orchestrator.orders.queries import load_order, new_order_view
from orchestrator.orders.status import OrderStatus
from orchestrator.orders.timeline import OrderRef, event_rows
from orchestrator.orders.views import OrderView
from orchestrator.platform.actors import Actor
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import (
    DATABASE_ERRORS,
    Database,
    UnitOfWork,
    constraint_name,
    fetch,
    is_unique_violation,
)
from orchestrator.platform.errors import (
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    InsufficientStock,
    InvalidRequest,
    LocationLacksCapability,
    UnknownLocation,
    UnknownSku,
)
from orchestrator.platform.events import OrderEventDraft
from orchestrator.platform.idempotency import lock_id
from orchestrator.platform.money import check_currency
from orchestrator.sourcing.engine import (
    LineDemand,
    PickupPolicy,
    SourcingProfile,
    SourcingRequest,
    plan_sourcing,
)
from orchestrator.sourcing.service import (
    SiteRow,
    Sourced,
    StockMoved,
    decision_row,
    materialise,
    profile_from_row,
    reserve_check,
    shortfalls_of,
    source_widely,
    store_candidate,
)

# Unique constraints two concurrent placements can both pass the checks for; the loser retries
# and then finds the winner's order (or, for a phone intake fills in, the winner's customer).
RACED_CONSTRAINTS = frozenset(
    {"uq_orders_channel_ref", "orders_number_key", "idempotency_keys_pkey", "uq_customers_phone"}
)


class DuplicateOrder(Exception):
    """Another request inserted the same channel order (or drew the same number) first."""


async def place_order(
    db: Database,
    cmd: PlaceOrder,
    actor: Actor,
    clock: Clock,
    *,
    claim: IdempotencyClaim | None,
    phone_region: str = "US",
) -> Placement:
    """Create the order, or answer with the existing one for the same channel reference, or
    replay the stored answer for the same idempotency key."""
    customer = normalise_details(cmd.customer, phone_region)
    currency = check_currency(cmd.currency)
    if not cmd.lines:
        raise InvalidRequest("an order needs at least one line", field="lines")
    if not cmd.method.is_pickup and cmd.destination is None and cmd.address is None:
        raise InvalidRequest("a shipment needs an address", field="fulfillment.address")
    if cmd.method.is_pickup and not cmd.location:
        raise InvalidRequest(f"{cmd.method.value} needs a location", field="fulfillment.location")

    async def attempt(uow: UnitOfWork) -> Placement:
        try:
            return await _place(uow, cmd, customer, currency, actor, clock, claim)
        except DATABASE_ERRORS as exc:
            if is_unique_violation(exc) and constraint_name(exc) in RACED_CONSTRAINTS:
                raise DuplicateOrder() from exc
            raise

    try:
        return await db.run(attempt, also_retry=(StockMoved, DuplicateOrder))
    except StockMoved as exc:
        raise InsufficientStock(exc.shortfalls) from None


async def _place(
    uow: UnitOfWork,
    cmd: PlaceOrder,
    customer: CustomerDetails,
    currency: str,
    actor: Actor,
    clock: Clock,
    claim: IdempotencyClaim | None,
) -> Placement:
    session = uow.session
    now = clock.now()
    skus = sorted({line.sku for line in cmd.lines})
    held, stored, existing, products_json, store_json, profile_json, who = (
        await fetch(
            session,
            sql.INTAKE,
            lock_id(claim.principal, claim.key) if claim else 0,
            claim.principal if claim else None,
            claim.key if claim else None,
            cmd.channel,
            cmd.channel_order_ref,
            skus,
            cmd.location if cmd.method.is_pickup else None,
            cmd.channel,
            customer.email,
            customer.phone,
            uuid.uuid4(),
            customer.name,
            now,
        )
    )[0]
    if not held:
        raise IdempotencyKeyInFlight("a request with this Idempotency-Key is still being processed")
    if stored is not None:
        if claim is None or stored[0] != claim.fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used with a different request body", field="Idempotency-Key"
            )
        return Placement(stored[1], bytes(stored[2]), replayed=True)

    if existing is not None:
        view = (await load_order(session, existing, actor)).view()
        body = msgspec.json.encode(view)
        if claim is not None:
            await _remember(session, claim, 200, body, now)
        await uow.commit()
        return Placement(200, body, order_id=view.id)

    context = IntakeContext(
        products=_as_json(products_json),
        store=_as_json(store_json),
        profile=profile_from_row(_as_json(profile_json)),
        customer=SimpleNamespace(id=who[0], email=who[1], phone=who[2], name=who[3]) if who else None,
    )
    view, body = await _create(session, cmd, context, customer, currency, actor, now, claim)
    await uow.commit()
    return Placement(201, body, order_id=view.id)


@dataclass
class IntakeContext:
    """What the first query of intake found."""

    products: dict[str, int]
    store: dict[str, Any] | None
    profile: SourcingProfile
    customer: Any


async def _remember(session: AsyncSession, claim: IdempotencyClaim, status: int, body: bytes, now: datetime) -> None:
    await fetch(
        session,
        "INSERT INTO idempotency_keys (principal, key, fingerprint, status_code, response_body, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6) RETURNING 1",
        claim.principal,
        claim.key,
        claim.fingerprint,
        status,
        body,
        now,
    )


async def _create(
    session: AsyncSession,
    cmd: PlaceOrder,
    context: IntakeContext,
    customer: CustomerDetails,
    currency: str,
    actor: Actor,
    now: datetime,
    claim: IdempotencyClaim | None,
) -> tuple[OrderView, bytes]:
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
    rows = materialise(
        sourced,
        order_id=order_id,
        method=cmd.method,
        order_lines={str(line_ids[i]): (line_ids[i], products[ln.sku], ln.sku) for i, ln in enumerate(cmd.lines)},
        ship_address=cmd.address,
        decision_id=decision["id"],
        now=now,
    )
    if not locked:
        await reserve_check(session, rows)
    who = context.customer or await _customer(session, customer)

    number = new_order_number()
    subtotal = sum(line.quantity * line.unit_price for line in cmd.lines)
    drafts = [
        OrderEventDraft(
            "order.placed",
            {
                "number": number,
                "channel": cmd.channel,
                "channel_order_ref": cmd.channel_order_ref,
                "subtotal": subtotal,
                "currency": currency,
                "method": cmd.method.value,
                "lines": [{"sku": ln.sku, "quantity": ln.quantity} for ln in cmd.lines],
            },
        ),
        OrderEventDraft(
            "order.sourced",
            {
                "decision_id": str(decision["id"]),
                "rule": sourced.plan.rule.value,
                "locations": sourced.plan.locations,
                "fulfillment_orders": [str(i) for i in rows.fulfillment_ids()],
            },
        ),
    ]
    order_row = {
        "id": order_id,
        "number": number,
        "channel": cmd.channel,
        "channel_order_ref": cmd.channel_order_ref,
        "customer_id": who.id,
        "currency": currency,
        "subtotal": subtotal,
        "status": OrderStatus.RECEIVED.value,
        "attention_reason": None,
        "fulfillment_method": cmd.method.value,
        "pickup_location_id": store.id if store else None,
        "ship_address": cmd.address,
        "sourcing_profile_version": profile.version,
        "version": 1,
        "last_event_seq": len(drafts),
        "created_at": now,
        "updated_at": now,
    }
    line_rows = [
        {
            "id": line_ids[i],
            "order_id": order_id,
            "line_no": i + 1,
            "product_id": products[ln.sku],
            "sku": ln.sku,
            "quantity": ln.quantity,
            "unit_price": ln.unit_price,
            "quantity_cancelled": 0,
            "quantity_fulfilled": 0,
            "quantity_returned": 0,
            "quantity_unsourced": 0,
        }
        for i, ln in enumerate(cmd.lines)
    ]
    events, messages = event_rows(OrderRef(order_id, number, cmd.channel), 1, drafts, actor, now)
    view = new_order_view(order_row, who, line_rows, rows.fulfillments, rows.lines, sourced.location_ids)
    body = msgspec.json.encode(view)
    locations, product_ids, quantities = sql.reservation_totals(rows.changes)
    idempotency = None
    if claim is not None:
        idempotency = sql.encode(
            {"principal": claim.principal, "key": claim.key, "fingerprint": claim.fingerprint, "status_code": 201}
        )
    await fetch(
        session,
        sql.WRITE_ORDER,
        sql.encode([order_row]),
        sql.encode(line_rows),
        sql.encode([decision]),
        sql.encode(rows.fulfillments),
        sql.encode(rows.lines),
        sql.encode(rows.reservations),
        sql.encode(events),
        sql.encode(messages),
        idempotency,
        now,
        locations,
        product_ids,
        quantities,
        actor.label,
        sql.movements_json(rows.changes),
        body,
    )
    return view, body


async def _source(
    session: AsyncSession,
    request: SourcingRequest,
    profile: SourcingProfile,
    products: dict[str, int],
    store: SiteRow | None,
) -> tuple[Sourced, bool]:
    """A pickup locks the store's rows first and plans on the locked numbers: no race, one query.
    Anything else (ship, or a store that falls short) plans on a snapshot and re-checks under lock."""
    if store is not None:
        # A short store may take transfers, whose rows must be locked together with the store's in
        # one canonical order: the savepoint lets go of the store's rows first (else deadlocks).
        savepoint = await session.begin_nested() if profile.pickup_policy is PickupPolicy.TRANSFER else None
        keys = [(store.id, pid) for pid in products.values()]
        positions = await lock_stock(session, keys)
        by_product = {pid: sku for sku, pid in products.items()}
        available = {by_product[k[1]]: p.available for k, p in positions.items()}
        plan = plan_sourcing(request, [store_candidate(store, available)], profile)
        if plan.complete:
            return Sourced(plan, {store.code: store.id}, products), True
        if savepoint is not None:
            await savepoint.rollback()
    # The store alone was just planned on (under lock): go straight to every location.
    return await source_widely(session, request, profile, products, store=store), False


def _as_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _pickup_store(cmd: PlaceOrder, row: dict[str, Any] | None) -> SiteRow:
    if row is None or not row["active"]:
        raise UnknownLocation(f"unknown location {cmd.location}", field="fulfillment.location")
    store = SiteRow.from_row(row)
    if cmd.method.capability not in store.capabilities:
        raise LocationLacksCapability(
            f"{cmd.location} does not offer {cmd.method.value}",
            field="fulfillment.location",
            capabilities=sorted(store.capabilities),
        )
    return store


async def _customer(session: AsyncSession, details: CustomerDetails) -> Any:
    """The customer another transaction created a moment ago (intake's own insert lost the race)."""
    rows = await fetch(session, sql.CUSTOMER, details.email, details.phone)
    if not rows:
        raise AssertionError("customer neither found nor created")  # pragma: no cover
    cid, email, phone, name = rows[0]
    return SimpleNamespace(id=cid, email=email, phone=phone, name=name)
