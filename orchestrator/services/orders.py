"""Placing and cancelling orders. One transaction each; retried on fresh numbers when another
transaction moved the stock first or took the same channel order reference."""

from __future__ import annotations

import uuid
import msgspec
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.db.access import IdempotencyRecord
from orchestrator.db.catalogue import Product
from orchestrator.db.engine import Database, UnitOfWork, constraint_name
from orchestrator.db.orders import Order, OrderLine
from orchestrator.domain.access import Actor
from orchestrator.domain.errors import (
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    InsufficientStock,
    InvalidRequest,
    LocationLacksCapability,
    UnknownLocation,
    UnknownSku,
)
from orchestrator.domain.events import OrderEventDraft
from orchestrator.domain.idempotency import lock_id
from orchestrator.domain.money import check_currency
from orchestrator.domain.order_number import new_order_number
from orchestrator.domain.order_status import OrderStatus
from orchestrator.domain.sourcing import LineDemand, SourcingRequest
from orchestrator.services.clock import Clock
from orchestrator.services.commands import IdempotencyClaim, Placement, PlaceOrder
from orchestrator.services.customers import normalise_details, resolve_customer
from orchestrator.services.order_queries import load_order
from orchestrator.services.sourcing import (
    StockMoved,
    current_profile,
    decision_row,
    insert_decision,
    insert_rows,
    load_site,
    materialise,
    reserve,
    shortfalls_of,
    source,
)
from orchestrator.services.timeline import OrderRef, write_events
from orchestrator.services.views import OrderView

class DuplicateOrder(Exception):
    """Another request inserted the same channel order (or drew the same number) first."""


# Unique constraints two concurrent placements can both pass the checks for; the loser retries
# and then finds the winner's order.
RACED_CONSTRAINTS = frozenset({"uq_orders_channel_ref", "orders_number_key", "idempotency_keys_pkey"})


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

    async def attempt(uow: UnitOfWork) -> Placement:
        session = uow.session
        if claim is not None:
            replay = await _claim(session, claim)
            if replay is not None:
                return replay
        try:
            return await _place(session, uow)
        except IntegrityError as exc:
            if constraint_name(exc) in RACED_CONSTRAINTS:
                raise DuplicateOrder() from exc
            raise

    async def _place(session: AsyncSession, uow: UnitOfWork) -> Placement:
        existing = await session.scalar(
            select(Order.id).where(Order.channel == cmd.channel, Order.channel_order_ref == cmd.channel_order_ref)
        )
        if existing is not None:
            view = (await load_order(session, existing, actor)).view()
            status = 200
        else:
            view = await _create(session, cmd, customer_details=customer, currency=currency,
                                 actor=actor, clock=clock)
            status = 201
        body = msgspec.json.encode(view)
        if claim is not None:
            await session.execute(
                insert(IdempotencyRecord),
                [{"principal": claim.principal, "key": claim.key, "fingerprint": claim.fingerprint,
                  "status_code": status, "response_body": body, "created_at": clock.now()}],
            )
        await uow.commit()
        return Placement(status, body, order_id=view.id)

    try:
        return await db.run(attempt, also_retry=(StockMoved, DuplicateOrder))
    except StockMoved as exc:
        raise InsufficientStock(exc.shortfalls) from None


async def _claim(session: AsyncSession, claim: IdempotencyClaim) -> Placement | None:
    """Hold the key for this transaction; a stored answer is replayed, a different body refused."""
    held = await session.scalar(select(func.pg_try_advisory_xact_lock(lock_id(claim.principal, claim.key))))
    if not held:
        raise IdempotencyKeyInFlight("a request with this Idempotency-Key is still being processed")
    stored = (
        await session.execute(
            select(IdempotencyRecord.fingerprint, IdempotencyRecord.status_code, IdempotencyRecord.response_body)
            .where(IdempotencyRecord.principal == claim.principal, IdempotencyRecord.key == claim.key)
        )
    ).one_or_none()
    if stored is None:
        return None
    if stored[0] != claim.fingerprint:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used with a different request body", field="Idempotency-Key"
        )
    return Placement(stored[1], stored[2], replayed=True)


async def _create(
    session: AsyncSession,
    cmd: PlaceOrder,
    *,
    customer_details,
    currency: str,
    actor: Actor,
    clock: Clock,
) -> OrderView:
    now = clock.now()
    products = await _products(session, cmd)
    store = None
    if cmd.method.is_pickup:
        store = await _pickup_store(session, cmd)
    elif cmd.destination is None and cmd.address is None:
        raise InvalidRequest("a shipment needs an address", field="fulfillment.address")

    order_id = uuid.uuid4()
    line_ids = [uuid.uuid4() for _ in cmd.lines]
    request = SourcingRequest(
        lines=tuple(
            LineDemand(str(line_ids[i]), line.sku, line.quantity, line.unit_price)
            for i, line in enumerate(cmd.lines)
        ),
        method=cmd.method,
        pickup_location=store.code if store else None,
        destination=cmd.destination,
    )
    profile = await current_profile(session, cmd.channel)
    sourced = await source(session, request, profile, products, store=store)
    if not sourced.plan.complete:
        raise shortfalls_of(sourced, request)

    decision = decision_row(order_id=order_id, trigger="placement", channel=cmd.channel,
                            profile=profile, request=request, plan=sourced.plan, now=now)
    rows = materialise(
        sourced,
        order_id=order_id,
        method=cmd.method,
        order_lines={str(line_ids[i]): (line_ids[i], products[ln.sku], ln.sku) for i, ln in enumerate(cmd.lines)},
        ship_address=cmd.address,
        decision_id=decision["id"],
        now=now,
    )
    await reserve(session, rows, actor.label)
    customer_id = await resolve_customer(session, customer_details)
    number = new_order_number()
    subtotal = sum(line.quantity * line.unit_price for line in cmd.lines)
    drafts = [
        OrderEventDraft("order.placed", {
            "number": number,
            "channel": cmd.channel,
            "channel_order_ref": cmd.channel_order_ref,
            "subtotal": subtotal,
            "currency": currency,
            "method": cmd.method.value,
            "lines": [{"sku": ln.sku, "quantity": ln.quantity} for ln in cmd.lines],
        }),
        OrderEventDraft("order.sourced", {
            "decision_id": str(decision["id"]),
            "rule": sourced.plan.rule.value,
            "locations": sourced.plan.locations,
            "fulfillment_orders": [str(i) for i in rows.fulfillment_ids()],
        }),
    ]
    await session.execute(insert(Order), [{
        "id": order_id, "number": number, "channel": cmd.channel,
        "channel_order_ref": cmd.channel_order_ref, "customer_id": customer_id, "currency": currency,
        "subtotal": subtotal, "status": OrderStatus.RECEIVED.value, "attention_reason": None,
        "fulfillment_method": cmd.method.value, "pickup_location_id": store.id if store else None,
        "ship_address": cmd.address, "sourcing_profile_version": profile.version, "version": 1,
        "last_event_seq": len(drafts), "created_at": now, "updated_at": now,
    }])
    await session.execute(insert(OrderLine), [
        {"id": line_ids[i], "order_id": order_id, "line_no": i + 1, "product_id": products[ln.sku],
         "sku": ln.sku, "quantity": ln.quantity, "unit_price": ln.unit_price, "quantity_cancelled": 0,
         "quantity_fulfilled": 0, "quantity_returned": 0, "quantity_unsourced": 0}
        for i, ln in enumerate(cmd.lines)
    ])
    await insert_decision(session, decision)
    await insert_rows(session, rows)
    ref = OrderRef(order_id, number, cmd.channel)
    await write_events(session, ref, 1, drafts, actor, now)
    return (await load_order(session, order_id, actor)).view()


async def _products(session: AsyncSession, cmd: PlaceOrder) -> dict[str, int]:
    skus = sorted({line.sku for line in cmd.lines})
    rows = await session.execute(select(Product.sku, Product.id).where(Product.sku.in_(skus), Product.active))
    found = dict(rows.tuples().all())
    unknown = [s for s in skus if s not in found]
    if unknown:
        raise UnknownSku(f"unknown sku: {', '.join(unknown)}", field="lines", skus=unknown)
    return found


async def _pickup_store(session: AsyncSession, cmd: PlaceOrder):
    if not cmd.location:
        raise InvalidRequest(f"{cmd.method.value} needs a location", field="fulfillment.location")
    store = await load_site(session, code=cmd.location)
    if store is None or not store.active:
        raise UnknownLocation(f"unknown location {cmd.location}", field="fulfillment.location")
    if cmd.method.capability not in store.capabilities:
        raise LocationLacksCapability(
            f"{cmd.location} does not offer {cmd.method.value}", field="fulfillment.location",
            capabilities=sorted(store.capabilities),
        )
    return store
