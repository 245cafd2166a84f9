"""``POST /v1/orders/{id}/refunds``: a refund of captured money, idempotent under its key.

The request's flow across transactions (``refunds.py`` has the rule and the steps): the key is
claimed and the refund reserved in one transaction, whose answer (``202 pending`` for a card
refund still to be sent) is stored under the key; Stripe is asked outside any transaction; its
word is applied and the final answer (``201``, or the ``refund-refused`` problem) replaces the
stored one in the next. Stripe unreachable: the client gets the ``202`` and the worker's sweep
sends the same refund under the same key later. A repeated request replays the stored answer —
a ``202`` as the refund is now (sent again first if it is still pending), so the client's retry
never refunds twice and learns how its refund ended.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import Annotated

import msgspec
import structlog
from litestar import Controller, Request, Response, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody
from msgspec import Meta
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.payments.capture_queue import QUEUED
from orchestrator.payments.dependencies import GatewayDep
from orchestrator.payments.gateway import PaymentGateway, UnconfiguredGateway
from orchestrator.payments.refunds import reserve_refund, settle_refund
from orchestrator.payments.tables import Payment, PaymentOperation
from orchestrator.payments.views import RefundView, refund_view
from orchestrator.platform import idempotency
from orchestrator.platform.actors import Actor
from orchestrator.platform.auth import CHANNEL_WRITES
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import Database, UnitOfWork, committing
from orchestrator.platform.errors import GatewayUnavailable, PaymentError, PaymentsNotConfigured, RefundRefused
from orchestrator.platform.http.dependencies import DB, ActorDep, ClockDep
from orchestrator.platform.http.idempotent_posts import idempotency_key_header, keyed_answer, post_claim
from orchestrator.platform.idempotency import IdempotencyClaim
from orchestrator.platform.money import MAX_AMOUNT
from orchestrator.platform.problems import domain_problem, problems
from orchestrator.platform.schemas import RequestBody

log = structlog.get_logger("orchestrator.payments")

IdempotencyKey = idempotency_key_header("Unique per intended refund; a retry with the same key never refunds twice")


class RefundIn(RequestBody, kw_only=True):
    amount: Annotated[int, Meta(gt=0, le=MAX_AMOUNT, description="minor units of the order's currency")]
    reason: Annotated[str, Meta(min_length=1, max_length=255)] | None = None


@dataclass(frozen=True, slots=True)
class RefundRequest:
    order_id: uuid.UUID
    amount: int
    reason: str | None
    actor: Actor
    claim: IdempotencyClaim
    instance: str


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    replayed: bool = False


async def _answer(
    session: AsyncSession, operation_id: uuid.UUID, instance: str, refusal: PaymentError | None = None
) -> Answer:
    """The refund as it is now, as the client is told it."""
    op = await session.get(PaymentOperation, operation_id)
    assert op is not None
    payment = await session.get(Payment, op.payment_id)
    assert payment is not None
    if op.status == "failed":
        said = refusal.detail if refusal is not None else op.error_code
        refused = RefundRefused(f"the processor refused the refund: {said}", code=op.error_code)
        problem = domain_problem(refused, instance)
        return Answer(problem.status, msgspec.json.encode(problem))
    return Answer(202 if op.status == QUEUED else 201, msgspec.json.encode(refund_view(payment, op)))


async def _begin(
    uow: UnitOfWork, request: RefundRequest, clock: Clock, card_refunds: bool
) -> tuple[Answer, uuid.UUID | None]:
    """The key claimed and the refund reserved: the answer so far, and the refund still to send."""
    session = uow.session
    stored = await idempotency.claim(session, request.claim)
    if stored is not None:
        if stored.status_code != 202:
            return Answer(stored.status_code, stored.body, replayed=True), None
        operation_id = msgspec.json.decode(stored.body, type=RefundView).id
        now = await _answer(session, operation_id, request.instance)
        return dataclasses.replace(now, replayed=True), operation_id if now.status == 202 else None
    reserved = await reserve_refund(
        uow, request.order_id, request.amount, request.reason, request.actor, clock, card_refunds=card_refunds
    )
    answer = await _answer(session, reserved.operation_id, request.instance)
    await idempotency.complete(session, request.claim, answer.status, answer.body, clock.now())
    return answer, reserved.operation_id if reserved.queued else None


async def refund_order(db: Database, gateway: PaymentGateway, clock: Clock, request: RefundRequest) -> Answer:
    card_refunds = not isinstance(gateway, UnconfiguredGateway)
    first, queued = await db.run(committing(lambda uow: _begin(uow, request, clock, card_refunds)))
    if queued is None:
        return first
    final: Answer | None = None

    async def store(uow: UnitOfWork, refusal: PaymentError | None) -> None:
        nonlocal final
        final = await _answer(uow.session, queued, request.instance, refusal)
        if final.status != 202:
            await idempotency.replace(uow.session, request.claim, final.status, final.body)

    try:
        await settle_refund(db, gateway, clock, queued, request.actor, store)
    except (GatewayUnavailable, PaymentsNotConfigured) as exc:
        log.warning("refund pending: processor unavailable; the sweep retries", refund_id=str(queued), error=str(exc))
        return first
    if final is None:  # another run applied it first: the refund as it is now
        final = await db.run(lambda uow: _answer(uow.session, queued, request.instance))
    return dataclasses.replace(final, replayed=first.replayed)


class RefundController(Controller):
    path = "/v1/orders"
    tags = ["payments"]

    @post(
        "/{order_id:uuid}/refunds",
        operation_id="refundOrder",
        summary="Refund captured money, partly or fully (idempotent)",
        description=(
            "At most what was captured minus what was refunded and what refunds in flight reserved "
            "(422 `refund-exceeds-captured`). Card refunds go to Stripe; a refusal is 422 "
            "`refund-refused`; Stripe unreachable is 202 with status `pending` (the worker retries "
            "it under the same key). Pay-in-store money is recorded as handed back at the counter."
        ),
        guards=[CHANNEL_WRITES],
        status_code=201,
        responses={
            202: ResponseSpec(RefundView, description="Stripe could not be reached: pending, retried by the worker"),
            **problems(400, 401, 403, 404, 409, 422),
        },
    )
    async def refund(
        self,
        request: Request,
        order_id: FromPath[uuid.UUID],
        data: JSONBody[RefundIn],
        actor: ActorDep,
        db: DB,
        clock: ClockDep,
        gateway: GatewayDep,
        idempotency_key: IdempotencyKey,
    ) -> Response[RefundView]:
        body = {k: v for k, v in msgspec.to_builtins(data).items() if v is not None}
        claim = post_claim(actor, idempotency_key, f"/v1/orders/{order_id}/refunds", body)
        refund = RefundRequest(order_id, data.amount, data.reason, actor, claim, request.url.path)
        answer = await refund_order(db, gateway, clock, refund)
        return keyed_answer(answer.body, answer.status, replayed=answer.replayed)
