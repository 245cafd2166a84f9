"""``POST /v1/orders/{id}/changes``: parse the actions, call the use case, send its answer."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, post
from litestar.params import FromPath, JSONBody, QueryParameter
from msgspec import Meta

from orchestrator.fulfillment.dependencies import LifecycleDep
from orchestrator.orders import change_payment, change_rules, order_changes
from orchestrator.orders.commands import NewPayment
from orchestrator.orders.schemas import PaymentIn
from orchestrator.payments.dependencies import GatewayDep
from orchestrator.platform.auth import WRITE_ORDERS
from orchestrator.platform.http.dependencies import DB, ActorDep, ClockDep, etag, parse_if_match
from orchestrator.platform.http.idempotent_posts import idempotency_key_header, keyed_answer, post_claim
from orchestrator.platform.problems import problems
from orchestrator.platform.schemas import AddressIn, Code, Minor, Quantity, Reason, RequestBody, Sku, if_match_header


class SetQuantityIn(RequestBody, kw_only=True, tag_field="type", tag="set_quantity"):
    line_id: uuid.UUID
    quantity: Annotated[int, Meta(ge=0, le=1_000_000)]


class CancelLineIn(RequestBody, kw_only=True, tag_field="type", tag="cancel_line"):
    line_id: uuid.UUID
    quantity: Annotated[int, Meta(ge=1, le=1_000_000)] | None = None


class ChangeAddressIn(RequestBody, kw_only=True, tag_field="type", tag="change_address"):
    address: AddressIn


class CancelOrderIn(RequestBody, kw_only=True, tag_field="type", tag="cancel_order"):
    reason: Reason = "cancelled on request"


class AddLineIn(RequestBody, kw_only=True, tag_field="type", tag="add_line"):
    sku: Sku
    quantity: Quantity
    unit_price: Minor


class MovePickupIn(RequestBody, kw_only=True, tag_field="type", tag="move_pickup"):
    location: Code


class SwitchToShipIn(RequestBody, kw_only=True, tag_field="type", tag="switch_to_ship"):
    address: AddressIn


class SwitchToPickupIn(RequestBody, kw_only=True, tag_field="type", tag="switch_to_pickup"):
    location: Code


ActionIn = (
    SetQuantityIn
    | CancelLineIn
    | AddLineIn
    | MovePickupIn
    | SwitchToShipIn
    | SwitchToPickupIn
    | ChangeAddressIn
    | CancelOrderIn
)


class ChangeIn(RequestBody, kw_only=True):
    actions: Annotated[list[ActionIn], Meta(min_length=1, max_length=50)]
    payment: PaymentIn | None = None


class DecisionOut(msgspec.Struct, kw_only=True):
    index: int
    type: str
    accepted: bool
    reason: str | None


class ChangePreview(msgspec.Struct, kw_only=True):
    """What the change would do now (``?dry_run=true``): nothing of it is written."""

    accepted: bool
    actions: list[DecisionOut]
    lines: list[dict[str, Any]]
    totals_before: dict[str, int]
    totals_after: dict[str, int]
    payment_difference: int
    fulfillments: list[dict[str, Any]]
    sourcing: list[dict[str, Any]]
    expected_ready_at: str | None
    shortfalls: list[dict[str, Any]] | None = None


IfMatch = Annotated[str | None, if_match_header("ETag (version) the change is based on; required")]
IdempotencyKey = idempotency_key_header(
    "A retry with the same key returns the first answer (checked before If-Match)", required=False
)


def to_action(action: ActionIn, new_line: uuid.UUID) -> change_rules.ChangeAction:
    """``new_line``: the id an added line gets (the same in the dry run and the applied change)."""
    match action:
        case SetQuantityIn(line_id=line_id, quantity=quantity):
            return change_rules.SetQuantity(line_id, quantity)
        case CancelLineIn(line_id=line_id, quantity=quantity):
            return change_rules.CancelLine(line_id, quantity)
        case ChangeAddressIn(address=address):
            return change_rules.ChangeAddress(msgspec.to_builtins(address))
        case CancelOrderIn(reason=reason):
            return change_rules.CancelOrder(reason)
        case AddLineIn(sku=sku, quantity=quantity, unit_price=unit_price):
            return change_rules.AddLine(new_line, sku, quantity, unit_price)
        case MovePickupIn(location=location):
            return change_rules.MovePickup(location)
        case SwitchToShipIn(address=address):
            return change_rules.SwitchToShip(msgspec.to_builtins(address))
        case SwitchToPickupIn(location=location):
            return change_rules.SwitchToPickup(location)
    raise AssertionError(action)  # pragma: no cover - the union is matched above


class OrderChangeController(Controller):
    path = "/v1/orders"
    tags = ["orders"]

    @post(
        "/{order_id:uuid}/changes",
        operation_id="changeOrder",
        summary="Change an order from any channel: quantities, lines, address, cancel (idempotent)",
        description=(
            "Actions apply together or not at all. Only units nobody started to pick may be taken away "
            "or switched (a moved pickup also takes picked units back to the old store's shelf); otherwise "
            "409 `change-refused` lists each action's `accepted` and `reason` (`insufficient_stock` with "
            "`shortfalls` when no store can serve what the change adds or moves). `?dry_run=true` answers "
            "what the change would do (lines, totals, payment difference, fulfillments, sourcing, "
            "`expected_ready_at`) and writes nothing. A card order whose total rises is authorised again "
            "for what is left to pay before the change commits (`payment` as at intake, else the saved "
            "card); 402 `additional-payment-required` when neither can. Staff keys may only `move_pickup` "
            "to their own store (another store's order after a counter lookup). `If-Match` is required "
            "(428 without it, 412 when stale); a replayed `Idempotency-Key` is answered first."
        ),
        guards=[WRITE_ORDERS],
        status_code=200,
        responses=problems(400, 401, 402, 403, 404, 409, 412, 422, 428, 503),
    )
    async def change(
        self,
        order_id: FromPath[uuid.UUID],
        data: JSONBody[ChangeIn],
        actor: ActorDep,
        db: DB,
        clock: ClockDep,
        lifecycle: LifecycleDep,
        gateway: GatewayDep,
        if_match: IfMatch = None,
        idempotency_key: IdempotencyKey = None,
        dry_run: Annotated[bool, QueryParameter(description="answer what would change; write nothing")] = False,
    ) -> Response[order_changes.ChangeApplied | ChangePreview]:
        claim = None
        if idempotency_key is not None and not dry_run:
            claim = post_claim(actor, idempotency_key, f"/v1/orders/{order_id}/changes", msgspec.to_builtins(data))
        version = parse_if_match(if_match)
        # An added line's id follows from the order, the version changed and the action's place:
        # the dry run names the line the applied change creates (only one change per version wins).
        actions = tuple(to_action(a, uuid.uuid5(order_id, f"{version}:{i}")) for i, a in enumerate(data.actions))
        request = order_changes.ChangeRequest(
            order_id,
            actions,
            version,
            actor,
            clock,
            lifecycle,
            claim,
        )
        if dry_run:
            # The unit of work is left without committing: whatever the preview read rolls back.
            seen = await db.run(lambda uow: order_changes.preview(uow, request))
            return Response(msgspec.convert(seen, ChangePreview))
        payment = NewPayment(**msgspec.to_builtins(data.payment)) if data.payment is not None else None
        answer = await change_payment.change(db, gateway, request, payment)
        # The body as stored under the key: encoded once, sent as it is (a replay too).
        return keyed_answer(  # type: ignore[return-value]
            answer.body, answer.status, replayed=answer.replayed, headers={"ETag": etag(answer.version)}
        )
