"""Between the rows and the transitions: the snapshot a transition decides on, built from a loaded
(locked) order, and the one way an ``Outcome`` is written back — rows, stock, re-sourcing and the
order's timeline, in the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.fulfillment.model import Fulfillment, Line, Order, OrderLine, OrderLineChange, Outcome
from orchestrator.fulfillment.resourcing import resource_shortages
from orchestrator.fulfillment.stock_moves import StockLedger
from orchestrator.order_record.aggregate import OrderAggregate, fulfillment_summaries
from orchestrator.order_record.states import OPEN_STATES, Method, Status
from orchestrator.order_record.status import OrderStatus
from orchestrator.order_record.tables import FulfillmentOrder
from orchestrator.order_record.timeline import record_derived_status, record_order_events
from orchestrator.payments.capture_queue import queue_payment_operations
from orchestrator.payments.captures import CAPTURE_FAILED
from orchestrator.payments.tenders import TenderRecord, record_tender
from orchestrator.platform.actors import Actor
from orchestrator.platform.events import EventType, OrderEventDraft


async def order_snapshot(
    aggregate: OrderAggregate, ledger: StockLedger, hold_days: Mapping[uuid.UUID, int] | None = None
) -> Order:
    """The order as the transitions see it, with each line's active reservations (loaded into
    ``ledger``, which moves them later) and, where given, a pickup's hold days."""
    line_ids = [ln.id for lines in aggregate.fulfillment_lines.values() for ln in lines]
    reservations = await ledger.reservations(line_ids)
    hold_days = hold_days or {}

    def fulfillment(fo: FulfillmentOrder) -> Fulfillment:
        lines = []
        for ln in aggregate.fulfillment_lines.get(fo.id, []):
            active = [r for r in reservations[ln.id] if r.status == "active"]
            lines.append(
                Line(
                    ln.id,
                    ln.order_line_id,
                    ln.sku,
                    ln.quantity,
                    picked=ln.quantity_picked,
                    cancelled=ln.quantity_cancelled,
                    handed_over=ln.quantity_handed_over,
                    reserved=sum(r.quantity for r in active),
                    reserved_here=sum(r.quantity for r in active if r.location_id == fo.location_id),
                )
            )
        return Fulfillment(
            fo.id,
            Status(fo.status),
            Method(fo.method),
            fo.location_id,
            aggregate.codes[fo.location_id],
            tuple(lines),
            feeds=fo.feeds_fulfillment_id,
            ready_at=fo.ready_at,
            pickup_deadline=fo.pickup_deadline,
            reminder_sent_at=fo.reminder_sent_at,
            pickup_code_issue=fo.pickup_code_issue,
            pickup_failed_attempts=fo.pickup_failed_attempts,
            pickup_locked_until=fo.pickup_locked_until,
            pickup_hold_days=hold_days.get(fo.id),
        )

    return Order(
        aggregate.order.status,
        tuple(fulfillment(fo) for fo in aggregate.fulfillments),
        tuple(
            OrderLine(
                ln.id,
                ln.sku,
                ln.quantity,
                cancelled=ln.quantity_cancelled,
                fulfilled=ln.quantity_fulfilled,
                unsourced=ln.quantity_unsourced,
            )
            for ln in aggregate.lines
        ),
    )


async def persist(
    session: AsyncSession,
    aggregate: OrderAggregate,
    ledger: StockLedger,
    outcomes: Iterable[Outcome],
    actor: Actor,
    now: datetime,
    *,
    order_lines: Iterable[OrderLineChange] = (),
    order_events: Iterable[OrderEventDraft] = (),
    tender: TenderRecord | None = None,
    then_place: Callable[[], Awaitable[list[OrderEventDraft]]] | None = None,
) -> None:
    """Write ``outcomes`` (and what a whole-order change does to its lines and timeline), and
    ``tender``, what a handover was paid at the counter (the service checked it). ``then_place``
    runs once the outcomes' stock moves are applied (an order change sources units there, on the
    stock its give-backs freed) and before the payment and the order's status follow."""
    drafts: list[OrderEventDraft] = []
    outcomes = list(outcomes)
    order_lines = list(order_lines)
    for outcome in outcomes:
        await _write(aggregate, ledger, outcome, now)
        drafts.extend(outcome.events)
        if outcome.shortages:
            fo = next(f for f in aggregate.fulfillments if f.id == outcome.fulfillment_id)
            drafts.extend(
                await resource_shortages(
                    session,
                    aggregate,
                    fo,
                    outcome.shortages,
                    outcome.trigger,
                    actor=actor,
                    now=now,
                    held_stock=[(c.location_id, c.product_id) for c in ledger.changes],
                    ledger=ledger,
                )
            )
    _change_order_lines(aggregate, order_lines)
    drafts.extend(order_events)
    await ledger.apply(actor.label)
    await session.flush()
    if then_place is not None:
        drafts.extend(await then_place())
    handed_over, closed = _goods_moved(outcomes)
    if handed_over or closed or order_lines:
        # What the goods that moved (or the order closing) make due on its card payment, queued
        # with the change; the worker captures or voids it, the handover never waits on Stripe.
        drafts.extend(await queue_payment_operations(session, aggregate, handed_over, now))
    if tender is not None:
        drafts.append(await record_tender(session, aggregate.order.id, aggregate.order.currency, tender, now))
    if drafts:
        await record_order_change(session, aggregate, drafts, actor, now)


async def _write(aggregate: OrderAggregate, ledger: StockLedger, outcome: Outcome, now: datetime) -> None:
    """The state, fields, quantities and stock moves of one outcome (and of those it closed)."""
    fo = next(f for f in aggregate.fulfillments if f.id == outcome.fulfillment_id)
    fo.status = outcome.state.value
    fo.version += 1
    fo.updated_at = now
    if outcome.state not in OPEN_STATES and fo.closed_at is None:
        fo.closed_at = now
    for name, value in outcome.fields.items():
        setattr(fo, name, value)
    lines = {ln.id: ln for rows in aggregate.fulfillment_lines.values() for ln in rows}
    for change in outcome.lines:
        line = lines[change.line_id]
        line.quantity_picked += change.picked
        line.quantity_cancelled += change.cancelled
        line.quantity_handed_over += change.handed_over
    _change_order_lines(aggregate, outcome.order_lines)
    for move in outcome.moves:
        await ledger.record(move, lines[move.line_id])
    for closed in outcome.closed:
        await _write(aggregate, ledger, closed, now)


def _goods_moved(outcomes: Iterable[Outcome]) -> tuple[dict[uuid.UUID, int], bool]:
    """(units handed over or shipped per fulfillment line, whether some fulfillment closed)."""
    handed: dict[uuid.UUID, int] = {}
    closed = False
    for outcome in outcomes:
        closed = closed or outcome.state not in OPEN_STATES
        for change in outcome.lines:
            if change.handed_over:
                handed[change.line_id] = handed.get(change.line_id, 0) + change.handed_over
        more, also_closed = _goods_moved(outcome.closed)
        for line_id, units in more.items():
            handed[line_id] = handed.get(line_id, 0) + units
        closed = closed or also_closed
    return handed, closed


def _change_order_lines(aggregate: OrderAggregate, changes: Iterable[OrderLineChange]) -> None:
    order_lines = {ln.id: ln for ln in aggregate.lines}
    for change in changes:
        line = order_lines[change.order_line_id]
        line.quantity_fulfilled += change.fulfilled
        line.quantity_cancelled += change.cancelled
        line.quantity_unsourced += change.unsourced


async def record_order_change(
    session: AsyncSession, aggregate: OrderAggregate, drafts: list[OrderEventDraft], actor: Actor, now: datetime
) -> None:
    """The order's derived status, its version and its events, after its fulfillments changed."""
    order = aggregate.order
    unsourced = any(line.quantity_unsourced for line in aggregate.lines)
    if not unsourced:
        # Everything is sourced again (or cancelled): nothing is left to choose.
        order.action_options, order.action_deadline = None, None
    # Units unsourced with a deadline: the customer chooses among the offered changes.
    action_required = unsourced and order.action_deadline is not None
    # A refused capture stays for an operator to settle, whatever the fulfillments do next.
    needs_attention = (unsourced and not action_required) or order.attention_reason == CAPTURE_FAILED
    attention = order.attention_reason if needs_attention or action_required else None
    if needs_attention and not attention:
        attention = "a line could not be sourced"
    for draft in drafts:
        if draft.type in (EventType.ORDER_NEEDS_ATTENTION, EventType.ORDER_ACTION_REQUIRED):
            attention = draft.data.get("reason", attention)
    if action_required and not needs_attention:
        status = OrderStatus.ACTION_REQUIRED.value
        if status != order.status:
            drafts.append(OrderEventDraft(EventType.ORDER_STATUS_CHANGED, {"from": order.status, "to": status}))
        await record_order_events(session, order, drafts, actor, now, status=status, attention_reason=attention)
        return
    summaries = fulfillment_summaries(aggregate.fulfillments, aggregate.fulfillment_lines)
    await record_derived_status(
        session,
        order,
        summaries,
        drafts,
        actor,
        now,
        attention_reason=attention,
        needs_attention=needs_attention,
        awaiting_payment=order.status == OrderStatus.PENDING_PAYMENT,
    )
