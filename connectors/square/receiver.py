"""``POST /v1/connectors/{id}/square/webhooks``: Square's order and payment webhooks, verified,
kept, processed.

No API key (Square sends none): ``x-square-hmacsha256-signature`` over the connector's configured
notification URL and the raw body is the authentication, checked before anything is parsed or
stored. The answer is 200 once the receipt is stored: Square retries a delivery that gets anything
else, so what processing comes to (unmapped, invalid, Square's API not answering) is the
receipt's outcome, not the answer.
"""

from __future__ import annotations

import hashlib
import uuid

import msgspec
import structlog
from litestar import Controller, Request, Response, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath

from connectors.receiving import signature_invalid
from connectors.square.events import EVENTS
from connectors.square.signature import STAND_IN_KEY, STAND_IN_URL, signed_by
from orchestrator.connections import receipts
from orchestrator.connections.dependencies import PROCESSING_DEPENDENCIES, ProcessingDep
from orchestrator.connections.model import Outcome
from orchestrator.connections.square_receipts import signing_of
from orchestrator.platform.http.dependencies import DB
from orchestrator.platform.problems import http_problem, problem_response, problems

log = structlog.get_logger("orchestrator.connectors")
PATH = "/v1/connectors/{connector_id:uuid}/square/webhooks"
# For the API key middleware: Square signs its deliveries, it holds no key of ours.
PUBLIC_PATTERN = r"^/v1/connectors/[^/]+/square/webhooks/?$"
SIGNATURE = "x-square-hmacsha256-signature"
# Never kept with a receipt: the signatures (the legacy HMAC-SHA1 one too), and what authenticates.
UNKEPT = frozenset({SIGNATURE, "x-square-signature", "authorization", "cookie", "proxy-authorization"})

DESCRIPTION = """
The address to subscribe in Square (Developer Console → Webhooks → Subscriptions) for the events
`order.created`, `order.updated`, `order.fulfillment.updated` and `payment.updated`; other events
are kept and `ignored`. The connector's `credentials.signature_key` is the subscription's
signature key, and its `settings.notification_url` must be the notification URL configured in
Square exactly (scheme, host, path, trailing slash): Square signs that URL with the body.

- **Signature**: `x-square-hmacsha256-signature` must be the base64 HMAC-SHA256 of the
  notification URL followed by the raw body, under the signature key (compared in constant time).
  Missing or wrong: 401 `webhook-signature-invalid`, nothing stored. An unknown connector: 404.
- **Once each**: a delivery is identified by the body's `event_id`; a repeat is kept as a
  `duplicate` receipt and applies nothing.
- **Answer**: 200 once the receipt is stored, whatever processing it comes to (`outcome`). The
  order itself is fetched from Square's Orders API (`GET /v2/orders/{id}`, the connector's
  `credentials.access_token`); when Square does not answer, the receipt is `pending` and the
  worker's sweep fetches again.
"""


class SquareWebhookReceived(msgspec.Struct, kw_only=True):
    received: bool
    receipt_id: uuid.UUID
    event_type: str
    duplicate: bool
    outcome: str


SIGNATURE_INVALID = f"{SIGNATURE} is missing or is not the signature of the notification URL and body"


def _identity(body: bytes) -> tuple[str, str, str | None]:
    """(event type, dedupe key, why unreadable): read only after the signature was checked."""
    try:
        payload = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        payload = None
    event_id = payload.get("event_id") if isinstance(payload, dict) else None
    kind = payload.get("type") if isinstance(payload, dict) else None
    kind = kind.strip() if isinstance(kind, str) and kind.strip() else "unknown"
    if isinstance(event_id, str) and event_id.strip():
        return kind, event_id.strip(), None
    # Kept all the same (every receipt is): the body's own digest stands in for the event id.
    return kind, "sha256:" + hashlib.sha256(body).hexdigest(), "the body is not a Square event (no event_id)"


class SquareWebhookController(Controller):
    path = PATH
    tags = ["connectors"]
    dependencies = PROCESSING_DEPENDENCIES
    # Public (no API key): an empty requirement overrides the document's global bearer one.
    security = [{}]

    @post(
        "/",
        operation_id="receiveSquareWebhook",
        summary="Receive a Square webhook (signed by Square, kept, applied once)",
        description=DESCRIPTION,
        status_code=200,
        responses={
            200: ResponseSpec(SquareWebhookReceived, description="Stored (and processed, see `outcome`)"),
            **problems(401, 404, 413, 503),
        },
    )
    async def receive(
        self,
        request: Request,
        connector_id: FromPath[uuid.UUID],
        db: DB,
        flow: ProcessingDep,
    ) -> Response:
        body = await request.body()
        signing = await signing_of(db, connector_id)
        # An unknown connector, or one without its notification URL, is checked against stand-ins,
        # so it takes as long as a known one (and a connector without a URL accepts nothing).
        url = signing.notification_url if signing is not None else None
        key = signing.signature_key if signing is not None else STAND_IN_KEY
        valid = signed_by(url or STAND_IN_URL, body, request.headers.get(SIGNATURE), key) and url is not None
        instance = request.url.path
        if signing is None:
            return problem_response(http_problem(404, "no Square connector has this id", instance))
        if not valid:
            if url is None:
                log.warning("square connector has no settings.notification_url", connector_id=str(connector_id))
            return signature_invalid(SIGNATURE_INVALID, instance)
        kind, dedupe_key, unreadable = _identity(body)
        processed = kind in EVENTS and unreadable is None
        delivery = receipts.Delivery(
            connector_id=connector_id,
            topic=kind,
            dedupe_key=dedupe_key,
            headers={k.lower(): v for k, v in request.headers.items() if k.lower() not in UNKEPT},
            body=body,
            outcome=Outcome.PENDING if processed else (Outcome.INVALID if unreadable else Outcome.IGNORED),
            detail=unreadable or (None if processed else f"event type {kind} is not processed"),
        )
        receipt, outcome = await receipts.take_in(flow, delivery)
        answer = SquareWebhookReceived(
            received=True,
            receipt_id=receipt.id,
            event_type=kind,
            duplicate=receipt.duplicate_of is not None,
            outcome=outcome.value,
        )
        return Response(answer, status_code=200)
