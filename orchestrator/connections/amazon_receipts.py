"""An Amazon receipt (one version of an order, as ``getOrders`` and ``getOrderItems`` gave it),
processed: its ``OrderStatus`` says what it does to the service.

- ``Unshipped`` / ``PartiallyShipped`` (paid, to be fulfilled by the seller): the order is placed
  through intake as the connector's channel, paid by the marketplace; a later version of an order
  already placed is that order (intake's channel reference), so it places once.
- ``Canceled``, or an item whose ``BuyerRequestedCancel`` says so: the order is cancelled if
  anything of it is still open; one never placed is recorded and not placed.
- ``Pending`` / ``PendingAvailability``: not paid, no prices yet (Amazon): ``ignored``; the order
  comes again when it changes (a new ``LastUpdateDate``, so a new receipt).
- Fulfilled by Amazon (``AFN``), ``Shipped``, ``InvoiceUnconfirmed``, ``Unfulfillable``: recorded.
- A version older than one already applied or ignored for the same order is ``stale`` (a replay
  of an unmapped version after the order was cancelled places nothing).
"""

from __future__ import annotations

import msgspec

from connectors.amazon import mapping
from orchestrator.connections import placing
from orchestrator.connections.model import Outcome
from orchestrator.connections.placing import channel_actor
from orchestrator.connections.receipts import Processing, Result
from orchestrator.connections.tables import Connector, ConnectorReceipt
from orchestrator.orders.changes import cancel_order
from orchestrator.platform.db import committing
from orchestrator.platform.errors import OrderNotCancellable

PLACED = frozenset({"Unshipped", "PartiallyShipped"})
NOT_YET = frozenset({"Pending", "PendingAvailability"})


async def apply(flow: Processing, connector: Connector, receipt: ConnectorReceipt) -> Result:
    try:
        body = msgspec.json.decode(receipt.body)
    except (msgspec.DecodeError, RecursionError):
        return Result(Outcome.INVALID, detail="the body is not valid JSON")
    try:
        head = mapping.read_head(body)
        at = {"resource_id": head.order_ref, "resource_updated_at": head.updated_at}
        newest = await flow.db.run(
            lambda uow: placing.newest_version(
                uow.session, connector.id, head.order_ref, receipt.id, [Outcome.APPLIED, Outcome.IGNORED]
            )
        )
        if newest is not None and head.updated_at < newest:
            return Result(Outcome.STALE, detail=f"a version of {newest.isoformat()} was processed already", **at)
        if head.fulfillment_channel == "AFN":
            return Result(Outcome.IGNORED, detail="fulfilled by Amazon (AFN): not ours to fulfil", **at)
        if head.status == "Canceled" or head.cancel_requested is not None:
            return await _cancel(flow, connector, head, at)
        if head.status in NOT_YET:
            return Result(Outcome.IGNORED, detail=f"{head.status}: not paid yet, placed once it is", **at)
        if head.status not in PLACED:
            return Result(Outcome.IGNORED, detail=f"OrderStatus {head.status} is recorded, not placed", **at)
        return await _place(flow, connector, body, head, at)
    except mapping.MappingError as exc:
        return Result(Outcome.INVALID, detail=str(exc))


async def _place(flow: Processing, connector: Connector, body: object, head: mapping.Head, at: dict) -> Result:
    maps = mapping.Maps(connector.channel, connector.location_map, connector.sku_map)
    mapped = mapping.map_order(body, maps)
    if isinstance(mapped, mapping.Unmapped):
        return Result(Outcome.UNMAPPED, detail="unmapped: " + ", ".join(mapped.missing), unmapped=mapped.missing, **at)
    source = f"/v1/connectors/{connector.id}/poll"
    return await placing.place(
        flow, connector, mapped.command, mapped.payment, source=source, updated_at=head.updated_at
    )


async def _cancel(flow: Processing, connector: Connector, head: mapping.Head, at: dict) -> Result:
    reason = "cancelled on Amazon" if head.status == "Canceled" else "the buyer asked Amazon to cancel"
    if head.cancel_requested:
        reason = f"{reason} ({head.cancel_requested})"
    order_id = await flow.db.run(lambda uow: placing.order_of(uow.session, connector.channel, head.order_ref))
    if order_id is None:
        return Result(Outcome.IGNORED, detail=f"{reason}; never placed here", **at)
    actor = channel_actor(connector)
    try:
        await flow.db.run(
            committing(lambda uow: cancel_order(uow, order_id, actor, flow.clock, flow.lifecycle, reason=reason[:500]))
        )
    except OrderNotCancellable as exc:
        return Result(Outcome.IGNORED, detail=exc.detail, order_id=order_id, **at)
    return Result(Outcome.APPLIED, detail=reason, order_id=order_id, **at)
