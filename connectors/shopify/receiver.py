"""``POST /v1/connectors/{id}/shopify/webhooks``: Shopify's order webhooks, verified, kept, processed.

No API key (Shopify sends none): ``X-Shopify-Hmac-Sha256`` is the authentication, checked over the
raw body before anything is parsed or stored. The answer is 200 as soon as the receipt is stored:
Shopify retries a delivery that gets anything else and removes a subscription that keeps failing,
so what processing comes to (unmapped, invalid, a crash) is the receipt's outcome, not the answer.
"""

from __future__ import annotations

import uuid

import msgspec
import structlog
from litestar import Controller, Request, Response, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath

from connectors.receiving import signature_invalid
from connectors.shopify.signature import STAND_IN_SECRET, signed_by
from orchestrator.connections import receipts
from orchestrator.connections.dependencies import PROCESSING_DEPENDENCIES, ProcessingDep
from orchestrator.connections.model import Kind, Outcome
from orchestrator.connections.shopify_receipts import TOPICS
from orchestrator.platform.http.dependencies import DB
from orchestrator.platform.problems import FieldError, http_problem, problem_response, problems

log = structlog.get_logger("orchestrator.connectors")
PATH = "/v1/connectors/{connector_id:uuid}/shopify/webhooks"
# For the API key middleware: Shopify signs its deliveries, it holds no key of ours.
PUBLIC_PATTERN = r"^/v1/connectors/[^/]+/shopify/webhooks/?$"
SIGNATURE = "x-shopify-hmac-sha256"
REQUIRED = ("x-shopify-topic", "x-shopify-shop-domain", "x-shopify-webhook-id", "x-shopify-api-version")
# Never kept with a receipt: the signature, and anything a proxy may have added that authenticates.
UNKEPT = frozenset({SIGNATURE, "authorization", "cookie", "proxy-authorization"})

DESCRIPTION = """
The address to subscribe in Shopify (an app's webhook subscriptions, JSON format) for the topics
`orders/create`, `orders/updated`, `orders/cancelled` and `refunds/create`; other topics are kept
and `ignored`. The connector's `credentials.webhook_secret` is the app's client secret, which
Shopify signs with.

- **Signature**: `X-Shopify-Hmac-Sha256` must be the base64 HMAC-SHA256 of the raw body under that
  secret (compared in constant time). Missing or wrong: 401 `webhook-signature-invalid`, nothing
  stored. An unknown connector: 404.
- **Headers**: `X-Shopify-Topic`, `X-Shopify-Shop-Domain`, `X-Shopify-Webhook-Id` and
  `X-Shopify-API-Version` are required (400 naming the missing ones, nothing stored).
- **Once each**: a delivery is identified by `X-Shopify-Event-Id` when sent, else by
  `X-Shopify-Webhook-Id`; a repeat is kept as a `duplicate` receipt and applies nothing.
- **Answer**: 200 once the receipt is stored, whatever processing it comes to (`outcome`:
  `applied`, `unmapped`, `invalid`, `stale`, `ignored`, or `pending` when processing failed: the
  worker's sweep retries it). See `GET /v1/connectors/{id}/receipts`.
"""


class ShopifyWebhookReceived(msgspec.Struct, kw_only=True):
    received: bool
    receipt_id: uuid.UUID
    topic: str
    duplicate: bool
    outcome: str


SIGNATURE_INVALID = "X-Shopify-Hmac-Sha256 is missing or is not the body's signature under the connector's secret"


class ShopifyWebhookController(Controller):
    path = PATH
    tags = ["connectors"]
    dependencies = PROCESSING_DEPENDENCIES
    # Public (no API key): an empty requirement overrides the document's global bearer one.
    security = [{}]

    @post(
        "/",
        operation_id="receiveShopifyWebhook",
        summary="Receive a Shopify webhook (signed by Shopify, kept, applied once)",
        description=DESCRIPTION,
        status_code=200,
        responses={
            200: ResponseSpec(ShopifyWebhookReceived, description="Stored (and processed, see `outcome`)"),
            **problems(400, 401, 404, 413, 503),
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
        secret = await receipts.signing_secret(db, connector_id, Kind.SHOPIFY.value, "webhook_secret")
        # An unknown connector is checked against a stand-in, so it takes as long as a known one.
        valid = signed_by(body, request.headers.get(SIGNATURE), secret or STAND_IN_SECRET)
        instance = request.url.path
        if secret is None:
            return problem_response(http_problem(404, "no Shopify connector has this id", instance))
        if not valid:
            return signature_invalid(SIGNATURE_INVALID, instance)
        headers = {k.lower(): v for k, v in request.headers.items() if k.lower() not in UNKEPT}
        missing = [h for h in REQUIRED if not headers.get(h, "").strip()]
        if missing:
            errors = [FieldError(field=h, message="required header missing") for h in missing]
            detail = "missing Shopify headers: " + ", ".join(missing)
            return problem_response(http_problem(400, detail, instance, errors))
        topic = headers["x-shopify-topic"].strip()
        delivery = receipts.Delivery(
            connector_id=connector_id,
            topic=topic,
            dedupe_key=(headers.get("x-shopify-event-id") or headers["x-shopify-webhook-id"]).strip(),
            headers=headers,
            body=body,
            outcome=Outcome.PENDING if topic in TOPICS else Outcome.IGNORED,
            detail=None if topic in TOPICS else f"topic {topic} is not processed",
        )
        receipt, outcome = await receipts.take_in(flow, delivery)
        answer = ShopifyWebhookReceived(
            received=True,
            receipt_id=receipt.id,
            topic=topic,
            duplicate=receipt.duplicate_of is not None,
            outcome=outcome.value,
        )
        return Response(answer, status_code=200)
