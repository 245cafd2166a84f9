"""A Square receipt, processed: the event's type says what it does to the service.

- ``order.created``: the order is fetched from Square (``GET /v2/orders/{id}``; the webhook carries
  only a summary) unless the event carries it, mapped, and placed through intake as the
  connector's channel, paid by Square (``marketplace``). Placing the same Square order id again is
  the order already placed, so a replay or a redelivery places once. An order without a
  fulfillment is an in-store sale: ``ignored``, saying so (see the README: not built).
- ``order.updated`` / ``order.fulfillment.updated``: one whose ``version`` is older than one
  applied for the same order is ``stale``; ``CANCELED`` cancels the order if anything of it is
  still open; anything else is recorded.
- ``payment.updated``: recorded (Square collected the money; we move none).

Square not answering the fetch now (timeout, 429, 5xx) raises: the receipt stays ``pending`` and
the sweep fetches again; Square refusing it (401/403/404, no access token) is ``invalid``.
"""

from __future__ import annotations

import dataclasses
import uuid

import msgspec
from sqlalchemy import select

from connectors.square import events, mapping, orders_api
from orchestrator.connections import placing
from orchestrator.connections.model import Kind, Outcome
from orchestrator.connections.placing import channel_actor
from orchestrator.connections.receipts import Processing, Result
from orchestrator.connections.tables import Connector, ConnectorReceipt
from orchestrator.orders.changes import cancel_order
from orchestrator.platform.db import Database, committing
from orchestrator.platform.errors import OrderNotCancellable


@dataclasses.dataclass(frozen=True)
class Signing:
    signature_key: str
    notification_url: str | None


async def signing_of(db: Database, connector_id: uuid.UUID) -> Signing | None:
    """What a Square delivery to ``connector_id`` is checked with; None for no Square connector."""

    async def read(uow):  # type: ignore[no-untyped-def]
        found = await uow.session.scalar(
            select(Connector).where(Connector.id == connector_id, Connector.kind == Kind.SQUARE.value)
        )
        key = found.credentials.get("signature_key") if found is not None else None
        if not isinstance(key, str):
            return None
        url = found.settings.get("notification_url")
        return Signing(key, url if isinstance(url, str) and url else None)

    return await db.run(read)


async def apply(flow: Processing, connector: Connector, receipt: ConnectorReceipt) -> Result:
    try:
        payload = msgspec.json.decode(receipt.body)
    except (msgspec.DecodeError, RecursionError):
        return Result(Outcome.INVALID, detail="the body is not valid JSON")
    try:
        event = events.read_event(payload)
        if event.type == "payment.updated" and event.payment is not None:
            return await _payment(flow, connector, event.payment)
        if event.type == "order.created":
            return await _created(flow, connector, event)
        if event.type in events.ORDER_EVENTS:
            return await _updated(flow, connector, receipt, event)
    except mapping.MappingError as exc:
        return Result(Outcome.INVALID, detail=str(exc))
    except orders_api.SquareRefused as exc:
        return Result(Outcome.INVALID, detail=f"Square refused the order: {exc}")
    return Result(Outcome.IGNORED, detail=f"event type {receipt.topic} is not processed")


async def _order_of_event(connector: Connector, event: events.Event) -> object:
    if event.order is not None:
        return event.order
    token = connector.credentials.get("access_token")
    if not isinstance(token, str) or not token:
        raise orders_api.SquareRefused("the connector has no access_token to fetch the order with")
    assert event.order_id is not None  # an order event always names its order (read_event)
    return await orders_api.retrieve_order(connector.settings.get("api_base"), token, event.order_id)


async def _created(flow: Processing, connector: Connector, event: events.Event) -> Result:
    ref = event.order_id
    if event.state in ("CANCELED", "DRAFT"):
        return Result(
            Outcome.IGNORED, detail=f"the order is {event.state} on Square: nothing to place", resource_id=ref
        )
    maps = mapping.Maps(connector.channel, connector.location_map, connector.sku_map)
    mapped = mapping.map_order(await _order_of_event(connector, event), maps)
    if isinstance(mapped, mapping.Unmapped):
        return Result(
            Outcome.UNMAPPED, detail="unmapped: " + ", ".join(mapped.missing), unmapped=mapped.missing, resource_id=ref
        )
    if isinstance(mapped, mapping.InStoreSale):
        what = "a completed in-store sale" if mapped.state == "COMPLETED" else f"an in-store ticket ({mapped.state})"
        detail = f"{what} without a fulfillment: recorded; its stock is not decremented (not built: no use case)"
        return Result(Outcome.IGNORED, detail=detail, resource_id=mapped.order_ref)
    if mapped.state == "CANCELED":
        return Result(Outcome.IGNORED, detail="the order is CANCELED on Square: nothing to place", resource_id=ref)
    source = f"/v1/connectors/{connector.id}/square/webhooks"
    return await placing.place(
        flow, connector, mapped.command, mapped.payment, source=source, updated_at=mapped.updated_at
    )


async def _updated(flow: Processing, connector: Connector, receipt: ConnectorReceipt, event: events.Event) -> Result:
    ref = event.order_id
    assert ref is not None
    applied = await flow.db.run(lambda uow: _applied_versions(uow.session, connector.id, ref, receipt.id))
    newest = max(applied, default=None)
    version = f"version {event.version}" if event.version is not None else "no version"
    if event.version is not None and newest is not None and event.version < newest:
        return Result(
            Outcome.STALE,
            detail=f"{version} is older than version {newest}, already applied",
            resource_id=ref,
            resource_updated_at=event.updated_at,
        )
    order_id = await flow.db.run(lambda uow: placing.order_of(uow.session, connector.channel, ref))
    if event.state == "CANCELED":
        if order_id is None:
            # Replayable: the order may be placed yet (its order.created waits for a map fix).
            detail = "no order has this Square order id"
            return Result(Outcome.UNMAPPED, detail=detail, unmapped=(f"order:{ref}",), resource_id=ref)
        actor = channel_actor(connector)
        try:
            await flow.db.run(
                committing(
                    lambda uow: cancel_order(
                        uow, order_id, actor, flow.clock, flow.lifecycle, reason="cancelled on Square"
                    )
                )
            )
        except OrderNotCancellable as exc:
            return Result(Outcome.IGNORED, detail=exc.detail, order_id=order_id, resource_id=ref)
        return Result(
            Outcome.APPLIED,
            detail="cancelled on Square",
            order_id=order_id,
            resource_id=ref,
            resource_updated_at=event.updated_at,
        )
    known = "" if order_id else "; no order of ours has this Square order id"
    return Result(
        Outcome.APPLIED,
        detail=f"recorded ({event.state or 'no state'}, {version}){known}",
        order_id=order_id,
        resource_id=ref,
        resource_updated_at=event.updated_at,
    )


async def _payment(flow: Processing, connector: Connector, payment: events.Payment) -> Result:
    order_id = None
    if payment.order_id is not None:
        ref = payment.order_id
        order_id = await flow.db.run(lambda uow: placing.order_of(uow.session, connector.channel, ref))
    amount = f"{payment.amount} {payment.currency} minor units" if payment.amount is not None else "no amount"
    return Result(
        Outcome.APPLIED,
        detail=f"payment {payment.payment_id} {payment.status or '?'} recorded ({amount}; collected by Square)",
        order_id=order_id,
        resource_id=payment.order_id,
    )


async def _applied_versions(session, connector_id: uuid.UUID, ref: str, other_than: uuid.UUID) -> list[int]:  # type: ignore[no-untyped-def]
    """The versions applied for a Square order, read back from the applied receipts' own events
    (a receipt has no column for a version)."""
    bodies = await session.scalars(
        select(ConnectorReceipt.body).where(
            ConnectorReceipt.connector_id == connector_id,
            ConnectorReceipt.resource_id == ref,
            ConnectorReceipt.topic.in_(events.ORDER_EVENTS),
            ConnectorReceipt.outcome == Outcome.APPLIED.value,
            ConnectorReceipt.id != other_than,
        )
    )
    versions = []
    for body in bodies:
        try:
            version = events.read_event(msgspec.json.decode(body)).version
        except (msgspec.DecodeError, mapping.MappingError):
            continue
        if version is not None:
            versions.append(version)
    return versions
