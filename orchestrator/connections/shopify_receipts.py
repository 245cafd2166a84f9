"""A Shopify receipt, processed: the topic says what the mapped payload does to the service.

- ``orders/create``: the order is placed through intake (``paid_intake.place_paid_order``) as the
  connector's channel, paid by the marketplace; a second placing of the same Shopify order id is
  the order already placed (intake's channel reference), so a replay or a redelivery places once.
- ``orders/updated``: recorded (its ``updated_at``); one older than what was applied for the same
  order is ``stale``. Changes to a placed order are not carried over (see the README).
- ``orders/cancelled``: the order is cancelled if anything of it is still open.
- ``refunds/create``: recorded with what it says; the marketplace moved the money, we move none.
"""

from __future__ import annotations

import msgspec

from connectors.shopify import mapping
from orchestrator.connections import placing
from orchestrator.connections.model import Outcome
from orchestrator.connections.receipts import Processing, Result
from orchestrator.connections.tables import Connector, ConnectorReceipt
from orchestrator.orders.changes import cancel_order
from orchestrator.platform.db import committing
from orchestrator.platform.errors import (
    OrderNotCancellable,
)

ORDER_TOPICS = ("orders/create", "orders/updated")
TOPICS = frozenset({*ORDER_TOPICS, "orders/cancelled", "refunds/create"})


async def apply(flow: Processing, connector: Connector, receipt: ConnectorReceipt) -> Result:
    try:
        payload = msgspec.json.decode(receipt.body)
    except (msgspec.DecodeError, RecursionError):
        return Result(Outcome.INVALID, detail="the body is not valid JSON")
    maps = mapping.Maps(connector.channel, connector.location_map, connector.sku_map)
    try:
        if receipt.topic == "orders/create":
            return await _create(flow, connector, receipt, payload, maps)
        if receipt.topic == "orders/updated":
            return await _updated(flow, connector, receipt, payload)
        if receipt.topic == "orders/cancelled":
            return await _cancelled(flow, connector, payload)
        if receipt.topic == "refunds/create":
            return _refund(payload)
    except mapping.MappingError as exc:
        return Result(Outcome.INVALID, detail=str(exc))
    return Result(Outcome.IGNORED, detail=f"topic {receipt.topic} is not processed")


async def _create(
    flow: Processing, connector: Connector, receipt: ConnectorReceipt, payload: object, maps: mapping.Maps
) -> Result:
    mapped = mapping.map_order(payload, maps)
    if isinstance(mapped, mapping.Unmapped):
        return Result(
            Outcome.UNMAPPED,
            detail="unmapped: " + ", ".join(mapped.missing),
            unmapped=mapped.missing,
            resource_id=mapped.order_ref,
        )
    source = f"/v1/connectors/{connector.id}/shopify/webhooks"
    return await placing.place(
        flow, connector, mapped.command, mapped.payment, source=source, updated_at=mapped.updated_at
    )


async def _updated(flow: Processing, connector: Connector, receipt: ConnectorReceipt, payload: object) -> Result:
    ref = mapping.order_ref(payload)
    newest = await flow.db.run(
        lambda uow: placing.newest_version(
            uow.session, connector.id, ref.order_ref, receipt.id, [Outcome.APPLIED], ORDER_TOPICS
        )
    )
    if ref.updated_at is not None and newest is not None and ref.updated_at < newest:
        return Result(
            Outcome.STALE,
            detail=f"updated_at {ref.updated_at.isoformat()} is older than {newest.isoformat()}, already applied",
            resource_id=ref.order_ref,
            resource_updated_at=ref.updated_at,
        )
    order_id = await flow.db.run(lambda uow: placing.order_of(uow.session, connector.channel, ref.order_ref))
    return Result(
        Outcome.APPLIED,
        detail="recorded" if order_id else "recorded; no order of ours has this Shopify order id",
        order_id=order_id,
        resource_id=ref.order_ref,
        resource_updated_at=ref.updated_at,
    )


async def _cancelled(flow: Processing, connector: Connector, payload: object) -> Result:
    ref = mapping.order_ref(payload)
    order_id = await flow.db.run(lambda uow: placing.order_of(uow.session, connector.channel, ref.order_ref))
    if order_id is None:
        # Replayable: the order may be placed yet (its orders/create waits for a map fix).
        return Result(
            Outcome.UNMAPPED,
            detail="no order has this Shopify order id",
            unmapped=(f"order:{ref.order_ref}",),
            resource_id=ref.order_ref,
        )
    reason = f"cancelled on Shopify ({ref.cancel_reason})" if ref.cancel_reason else "cancelled on Shopify"
    actor = placing.channel_actor(connector)
    try:
        await flow.db.run(
            committing(lambda uow: cancel_order(uow, order_id, actor, flow.clock, flow.lifecycle, reason=reason[:500]))
        )
    except OrderNotCancellable as exc:
        return Result(Outcome.IGNORED, detail=exc.detail, order_id=order_id, resource_id=ref.order_ref)
    return Result(Outcome.APPLIED, detail=reason, order_id=order_id, resource_id=ref.order_ref)


def _refund(payload: object) -> Result:
    refund = mapping.read_refund(payload)
    amounts = ", ".join(f"{amount} {currency}" for currency, amount in refund.amounts.items()) or "no amount"
    lines = ", ".join(f"{qty} × {sku or '?'}" for sku, qty in refund.lines) or "no lines"
    return Result(
        Outcome.APPLIED,
        detail=f"refund {refund.refund_id} recorded (refunded by Shopify: {amounts}; {lines})",
        resource_id=refund.order_ref,
    )
