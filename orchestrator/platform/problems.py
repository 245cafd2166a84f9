"""RFC 9457 problem details: every error leaves as ``application/problem+json``.

One table maps each domain error to a status and a stable problem type; nothing else decides
error statuses.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from sqlalchemy.exc import DBAPIError

from orchestrator.platform import errors as e
from orchestrator.platform.db import OutageLog, database_unavailable, sqlstate

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://orchestrator.example/problems/"
log = structlog.get_logger("orchestrator.api")


class FieldError(msgspec.Struct, kw_only=True, omit_defaults=True):
    field: str | None = None
    message: str


class Shortfall(msgspec.Struct, kw_only=True):
    sku: str
    requested: int
    available: int


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """RFC 9457 problem details; extension members carry what a client can act on."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None
    shortfalls: list[Shortfall] | None = None
    suggested_locations: list[str] | None = None
    state: str | None = None
    allowed_actions: list[str] | None = None
    current_version: int | None = None
    locked_until: str | None = None
    # An order change refused: each action, whether it could be applied, and why not.
    actions: list[dict[str, Any]] | None = None
    context: dict[str, Any] | None = None


# error class → (status, problem type slug, title). Most specific classes first.
PROBLEM_TABLE: list[tuple[type[e.DomainError], int, str, str]] = [
    (e.PaymentDeclined, 402, "payment-declined", "Payment declined"),
    (e.AdditionalPaymentRequired, 402, "additional-payment-required", "The change needs a payment for the difference"),
    (e.Forbidden, 403, "forbidden", "Not allowed for this API key"),
    (e.PaymentIntentMismatch, 422, "payment-intent-mismatch", "Payment does not match the order"),
    (e.PaymentsNotConfigured, 422, "payments-not-configured", "Payments not configured"),
    (e.WebhookSignatureInvalid, 400, "webhook-signature-invalid", "Webhook signature invalid"),
    (e.PaymentRequired, 422, "payment-required", "Payment required"),
    (e.PaymentExists, 409, "payment-exists", "The order already has a live payment"),
    (e.ShipmentUnpaid, 409, "payment-needed", "No payment covers these goods"),
    (e.NothingDue, 422, "nothing-due", "Nothing is due on the order"),
    (e.GatewayUnavailable, 503, "payment-gateway-unavailable", "Payment processor unavailable"),
    (e.RefundRefused, 422, "refund-refused", "Refund refused by the processor"),
    (e.NothingToRefund, 422, "nothing-to-refund", "Nothing captured to refund"),
    (e.RefundExceedsRefundable, 422, "refund-exceeds-captured", "Refund exceeds what is refundable"),
    (e.RefundedByMarketplace, 422, "refunded-by-marketplace", "The marketplace refunds this payment"),
    (e.TenderRequired, 422, "tender-required", "Payment at the counter required"),
    (e.TenderInsufficient, 422, "tender-insufficient", "Tender below the amount due"),
    (e.TenderExceedsDue, 422, "tender-exceeds-due", "Tender above the amount due"),
    (e.TenderNotNeeded, 422, "tender-not-needed", "Nothing to pay at the counter"),
    (e.InsufficientStock, 409, "insufficient-stock", "Not enough stock"),
    (e.StockWouldGoNegative, 409, "stock-would-go-negative", "Stock would go negative"),
    (e.IllegalTransition, 409, "illegal-transition", "Action not allowed in this state"),
    (e.OrderNotCancellable, 409, "order-not-cancellable", "Order cannot be cancelled"),
    (e.IdempotencyKeyInFlight, 409, "idempotency-key-in-flight", "Request with this key in flight"),
    (e.ChangeRefused, 409, "change-refused", "Order change refused"),
    (e.NothingToSource, 409, "nothing-to-source", "Nothing on the order waits for a location"),
    (e.AlreadyExists, 409, "already-exists", "Already exists"),
    (e.IdentityTaken, 409, "identity-taken", "The identity belongs to another customer"),
    (e.PickupLocked, 423, "pickup-locked", "Pickup locked"),
    (e.RateLimited, 429, "too-many-requests", "Too many requests"),
    (e.Conflict, 409, "conflict", "Conflict with the current state"),
    (e.VersionMismatch, 412, "version-mismatch", "Stale version"),
    (e.PreconditionRequired, 428, "precondition-required", "If-Match required"),
    (e.IdempotencyKeyReused, 422, "idempotency-key-reused", "Idempotency key reused"),
    (e.WrongPickupCode, 422, "wrong-pickup-code", "Wrong pickup code"),
    (e.UnknownSku, 422, "unknown-sku", "Unknown sku"),
    (e.UnknownLocation, 422, "unknown-location", "Unknown location"),
    (e.LocationLacksCapability, 422, "location-lacks-capability", "Location lacks the capability"),
    (e.InvalidRequest, 422, "invalid-request", "Invalid request"),
    (e.NotFound, 404, "not-found", "Not found"),
    (e.DomainError, 400, "bad-request", "Bad request"),
]

HTTP_TITLES = {
    400: ("malformed-request", "Malformed request"),
    401: ("unauthenticated", "Missing or invalid API key"),
    403: ("forbidden", "Not allowed for this API key"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("request-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation-error", "Validation failed"),
    431: ("request-headers-too-large", "Request header fields too large"),
    429: ("too-many-requests", "Too many requests"),
    500: ("internal-error", "Internal server error"),
    503: ("unavailable", "Service unavailable"),
}


def problem_type(slug: str) -> str:
    return PROBLEM_BASE + slug


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response[Problem]:
    return Response(problem, status_code=problem.status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def http_problem(
    status: int, detail: str | None, instance: str | None, errors: list[FieldError] | None = None
) -> Problem:
    """The problem of an HTTP status that no domain error decides (``HTTP_TITLES``)."""
    slug, title = HTTP_TITLES.get(status, ("http-error", "HTTP error"))
    return Problem(type=problem_type(slug), title=title, status=status, detail=detail, instance=instance, errors=errors)


def domain_problem(exc: e.DomainError, instance: str | None) -> Problem:
    # The first (most specific) row that matches; DomainError itself is the table's last row.
    _, status, slug, title = next(row for row in PROBLEM_TABLE if isinstance(exc, row[0]))
    problem = Problem(type=problem_type(slug), title=title, status=status, detail=exc.detail, instance=instance)
    context = {k: v for k, v in exc.context.items() if v is not None}
    if isinstance(exc, e.InvalidRequest) and exc.field:
        problem.errors = [FieldError(field=exc.field, message=exc.detail)]
    if isinstance(exc, e.InsufficientStock):
        problem.shortfalls = [
            Shortfall(sku=s.sku, requested=s.requested, available=s.available) for s in exc.shortfalls
        ]
        problem.suggested_locations = exc.suggestions
    if isinstance(exc, e.IllegalTransition):
        problem.state = exc.state
        problem.allowed_actions = exc.allowed
        context = {}
    if isinstance(exc, e.VersionMismatch):
        problem.current_version = exc.context["current"]
        context = {}
    if isinstance(exc, e.ChangeRefused):
        problem.actions = context.pop("actions", None)
    if isinstance(exc, e.PickupLocked):
        problem.locked_until = context.pop("locked_until", None)
    problem.context = context or None
    return problem


def on_domain_error(request: Request, exc: e.DomainError) -> Response[Problem]:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, e.RateLimited) else None
    return problem_response(domain_problem(exc, request.url.path), headers=headers)


def _looks_malformed(exc: ValidationException) -> bool:
    extra = exc.extra if isinstance(exc.extra, list) else []
    text = " ".join(str(item.get("message", "")) if isinstance(item, dict) else str(item) for item in extra)
    return "malformed" in text.lower() or "JSON is" in text or "invalid json" in text.lower()


# A missing or an unknown field: the message names it, the key is the object it is (not) in.
_MISSING_FIELD = re.compile(r"(?:missing required|contains unknown) field `([^`]+)`")
_MISSING_PARAM = re.compile(r"Missing required (\w+) parameter '([^']+)'")


def _field_of(item: dict[str, Any]) -> str | None:
    """The field a validation message is about, as the client spells it: litestar names the
    request body ``data`` and puts a missing field's name only in the message."""
    key = str(item["key"]) if item.get("key") else None
    missing = _MISSING_FIELD.search(str(item.get("message", "")))
    if missing:
        key = missing.group(1) if key in (None, "data") else f"{key}.{missing.group(1)}"
    return key


def on_validation_error(request: Request, exc: ValidationException) -> Response[Problem]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    errors = [
        FieldError(field=_field_of(item), message=str(item.get("message", "")))
        for item in extra
        if isinstance(item, dict)
    ]
    param = _MISSING_PARAM.search(str(exc.detail or ""))
    if param and not errors:
        message = f"missing required {param.group(1)} parameter"
        errors = [FieldError(field=param.group(2), message=message)]
    status = 400 if _looks_malformed(exc) else 422
    detail = "the request body is not valid JSON" if status == 400 else "the request does not match the schema"
    return problem_response(http_problem(status, detail, request.url.path, errors or None))


def on_http_error(request: Request, exc: HTTPException) -> Response[Problem]:
    status = exc.status_code
    if status >= 500:
        log.error("server error", path=request.url.path, detail=exc.detail, extra=exc.extra, exc_info=exc)
    problem = http_problem(status, None, request.url.path)
    if exc.detail and exc.detail != problem.title:  # litestar's default detail is the title again
        problem.detail = exc.detail
    headers = dict(exc.headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="orchestrator"')
    return problem_response(problem, headers=headers or None)


# Before the app has its database (a failed startup), outages are counted here.
_OUTAGES_BEFORE_STARTUP = OutageLog()
RETRY_AFTER_SECONDS = 5


def on_database_unavailable(request: Request, exc: Exception) -> Response[Problem]:
    """503 with Retry-After; one log line per incident, without a traceback: a thousand requests
    failing on a stopped database are one fact, not a thousand errors."""
    db = getattr(request.app.state, "db", None)
    outages = getattr(db, "outages", _OUTAGES_BEFORE_STARTUP)
    if outages.first_of_incident():
        log.error("database unavailable", path=request.url.path, error=f"{type(exc).__name__}: {exc}")
    return problem_response(
        http_problem(503, "the database is unavailable; try again shortly", request.url.path),
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def on_unexpected_error(request: Request, exc: Exception) -> Response[Problem]:
    if database_unavailable(exc):
        return on_database_unavailable(request, exc)
    log.exception("unhandled error", path=request.url.path, error=repr(exc))
    return problem_response(
        http_problem(
            HTTP_500_INTERNAL_SERVER_ERROR, "an unexpected error occurred; it has been logged", request.url.path
        )
    )


# What PostgreSQL cannot store, whatever the schema allowed: NUL characters in text (22021)
# and ``\u0000`` in jsonb (22P05).
UNSTORABLE_TEXT_SQLSTATES = frozenset({"22021", "22P05"})


def on_database_error(request: Request, exc: Exception) -> Response[Problem]:
    if database_unavailable(exc):
        return on_database_unavailable(request, exc)
    if sqlstate(exc) not in UNSTORABLE_TEXT_SQLSTATES:
        return on_unexpected_error(request, exc)
    return problem_response(http_problem(400, "text may not contain NUL (\\u0000) characters", request.url.path))


EXCEPTION_HANDLERS: dict[Any, Any] = {
    e.DomainError: on_domain_error,
    ValidationException: on_validation_error,
    HTTPException: on_http_error,
    DBAPIError: on_database_error,
    asyncpg.PostgresError: on_database_error,
    Exception: on_unexpected_error,
}


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI documentation of the problem responses an operation can give.

    400 is always among them: litestar documents a 400 of its own for every operation with
    parameters, in a shape (``application/json``) this API never sends, unless we do."""
    described = {
        400: "Malformed JSON or parameters",
        402: "The payment was declined; `context` carries the processor's `code` and `decline_code`",
        401: "Missing or invalid API key",
        403: "The API key's role may not do this",
        404: "Not found, or not visible to this API key",
        409: "Conflicts with the current state",
        412: "If-Match names a stale version",
        428: "If-Match is required: name the version (ETag) the change is based on",
        413: "Request body too large",
        415: "Unsupported media type: the body must be application/json",
        422: "Validation failed; `errors` lists the fields",
        423: "Locked after too many wrong attempts",
        429: "Too many attempts; `Retry-After` says when to try again",
        503: "A dependency is down",
    }
    return {
        s: ResponseSpec(
            data_container=Problem,
            description=described.get(s, "Problem"),
            media_type=PROBLEM_MEDIA_TYPE,
            generate_examples=False,
        )
        for s in sorted({400, *statuses})
    }


__all__ = ["EXCEPTION_HANDLERS", "PROBLEM_MEDIA_TYPE", "Problem", "problems"]
