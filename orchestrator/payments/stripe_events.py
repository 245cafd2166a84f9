"""What a Stripe webhook event means for our record of a payment: pure, no I/O (the use cases that
apply it are ``orders/stripe_webhooks.py``).

Stripe delivers events late, twice and out of order, so nothing here trusts the order of arrival:

- every amount only grows: captured = max(ours, the intent's ``amount_received``); refunded =
  max(ours, what the charge says went back) — an older event carries less and changes nothing;
- every status only moves forward (pending → authorised → partially captured → captured →
  partially refunded → refunded; voided and failed are final), and an event about an object
  older (``created``) than one already applied for it is ignored whole (``ignored_stale``);
- an event about a payment our worker is moving right now (a queued capture or refund) changes
  no amount: the worker's own transaction records what it moved, and counting it twice would
  break ``captured ≤ authorised``.

Amounts in events are Stripe's unit for the currency; the record's are ISO 4217 minor units
(``platform.money``): converted here, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from orchestrator.payments.gateway import IntentStatus, PaymentState, capture_deadline
from orchestrator.platform.money import MAX_SUBTOTAL, minor_unit_exponent, stripe_exponent, to_stripe_amount

HANDLED = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.canceled",
        "payment_intent.payment_failed",
        "payment_intent.amount_capturable_updated",
        "payment_intent.requires_action",
        "charge.refunded",
        "charge.dispute.created",
    }
)
PAYMENT_CANCELED = "payment_canceled"
DISPUTED = "disputed"
# A payment's statuses in the order money moves; voided and failed end it.
_RANK = {s: i for i, s in enumerate(("pending", "authorised", "partially_captured", "captured"))}
_RANK |= {"partially_refunded": 4, "refunded": 5}
LIVE = frozenset({"authorised", "partially_captured"})


class Outcome(StrEnum):
    """What receiving an event did (``stripe_events.outcome``)."""

    APPLIED = "applied"
    RECEIVED = "received"  # understood; nothing to change (``requires_action``)
    IGNORED_STALE = "ignored_stale"  # older than an event already applied for the same object
    IGNORED_TYPE = "ignored_type"
    IGNORED_UNKNOWN_PAYMENT = "ignored_unknown_payment"
    IGNORED_STATE = "ignored_state"  # the record is already at or past what the event says
    IGNORED_MISMATCH = "ignored_mismatch"  # the intent is not for the order's amount or currency
    IGNORED_IN_FLIGHT = "ignored_in_flight"  # our worker is moving this money: its apply records it


class Action(StrEnum):
    NONE = "none"
    AUTHORISE = "authorise"  # 3-D Secure finished: authorised, the order goes to the stores
    FAIL_ATTEMPT = "fail_attempt"  # an attempt failed; the customer may try again until the timeout
    CANCEL_PENDING = "cancel_pending"  # the payment fails, the order is cancelled
    VOID = "void"  # the authorisation was released before any capture
    MOVE = "move"  # captured and/or refunded amounts go up
    DISPUTE = "dispute"


class MalformedEvent(ValueError):
    """Signed, but not a Stripe event this service can read."""


@dataclass(frozen=True)
class Received:
    id: str
    type: str
    created: datetime
    object_id: str | None
    intent_id: str | None  # the PaymentIntent it is about (a charge's or dispute's ``payment_intent``)
    obj: Mapping[str, Any]


@dataclass(frozen=True)
class Recorded:
    """Our payment (and its order) as the event meets it."""

    status: str
    currency: str
    authorised: int
    captured: int
    refunded: int
    multicapture: bool
    order_status: str
    order_total: int
    captures_in_flight: bool = False
    refunds_in_flight: bool = False
    disputes: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    action: Action = Action.NONE
    captured: int = 0  # the record's new amounts (MOVE; AUTHORISE when the intent was captured too)
    refunded: int = 0
    status: str | None = None  # the record's new status (MOVE)
    final: bool = False  # the capture released the rest
    state: PaymentState | None = None  # AUTHORISE: the intent, as the reconciler reads one
    code: str | None = None
    decline_code: str | None = None
    external_id: str | None = None  # the refund (re_), dispute (dp_) or charge the event names
    amount: int = 0  # DISPUTE: what is disputed
    reason: str | None = None


def _text(value: Any, limit: int) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


def _count(value: Any) -> int:
    """An amount Stripe sent (0 when it is not one: JSON booleans are not amounts either, nor
    one beyond an amount column)."""
    return value if type(value) is int and 0 <= value <= MAX_SUBTOTAL else 0


def _dict(value: Any) -> Mapping[str, Any]:
    """A nested Stripe object, or an empty one where the event carries something else."""
    return value if isinstance(value, dict) else {}


def _time(value: Any) -> datetime | None:
    """A Unix time Stripe sent, None when it is not one a datetime holds (a signed event is
    still read, never a 500)."""
    if type(value) is not int:
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def read_event(payload: Any) -> Received:
    """The event's envelope, checked; ``MalformedEvent`` if it is not one."""
    if not isinstance(payload, dict) or payload.get("object") != "event":
        raise MalformedEvent("the body is not a Stripe event")
    event_id, event_type = _text(payload.get("id"), 255), _text(payload.get("type"), 100)
    created = payload.get("created")
    data = payload.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    created_at = _time(created)
    if event_id is None or event_type is None or created_at is None or not isinstance(obj, dict):
        raise MalformedEvent("a Stripe event has an id, a type, a created time and data.object")
    object_id = _text(obj.get("id"), 255)
    if obj.get("object") == "payment_intent":
        intent_id = object_id
    else:
        intent = obj.get("payment_intent")
        intent_id = _text(intent.get("id") if isinstance(intent, dict) else intent, 255)
    return Received(event_id, event_type, created_at, object_id, intent_id, obj)


def from_stripe_amount(amount: Any, currency: str) -> int:
    """Stripe's ``amount`` in ``currency`` as ISO 4217 minor units (``to_stripe_amount`` undone)."""
    amount = _count(amount)
    shift = stripe_exponent(currency) - minor_unit_exponent(currency)
    return min(amount * 10**-shift if shift < 0 else amount // 10**shift, MAX_SUBTOTAL)


def _status_after(current: str, authorised: int, captured: int, refunded: int, *, final: bool) -> str:
    """The status the amounts give, never behind ``current``. A multicapture authorisation still
    holding money for goods to come stays ``partially_captured`` after a refund (as
    ``payments/refunds.py`` keeps it): its later handovers are still captured."""
    if refunded > 0 and current == "partially_captured" and not final:
        return current
    if refunded > 0:
        by_amounts = "refunded" if refunded >= captured else "partially_refunded"
    elif captured > 0:
        by_amounts = "captured" if final or captured >= authorised else "partially_captured"
    else:
        by_amounts = current
    return by_amounts if _RANK.get(by_amounts, -1) > _RANK.get(current, -1) else current


def intent_state(event: Received) -> PaymentState | None:
    """The PaymentIntent the event carries, as the gateway reads one (None: not a readable one).
    A webhook's intent does not expand ``latest_charge``: without the charge's
    ``capture_before`` the deadline is the documented week from the authorisation."""
    obj = event.obj
    try:
        status = IntentStatus(obj.get("status"))
        currency, amount = str(obj["currency"]).upper(), obj["amount"]
    except (KeyError, ValueError):
        return None
    charge = _dict(obj.get("latest_charge"))
    card = _dict(_dict(charge.get("payment_method_details")).get("card"))
    capture_before = _time(card.get("capture_before"))
    capturable, received = _count(obj.get("amount_capturable")), _count(obj.get("amount_received"))
    return PaymentState(
        intent_id=str(obj.get("id")),
        status=status,
        currency=currency,
        amount=_count(amount),
        authorised=capturable + received,
        captured=received,
        refunded=0,
        capturable=capturable,
        capture_before=capture_deadline(capture_before, event.created),
        multicapture=_dict(card.get("multicapture")).get("status") == "available",
        charge_id=_text(charge.get("id"), 255),
    )


def decide(event: Received, payment: Recorded | None, *, newest_applied: datetime | None) -> Decision:
    """What ``event`` does to ``payment`` (None: no payment of ours has its intent).
    ``newest_applied``: the newest ``created`` of the events applied about the same object."""
    if event.type not in HANDLED:
        return Decision(Outcome.IGNORED_TYPE)
    if event.type == "payment_intent.requires_action":
        return Decision(Outcome.RECEIVED)  # the storefront shows 3-D Secure; nothing moved
    if payment is None:
        return Decision(Outcome.IGNORED_UNKNOWN_PAYMENT)
    if newest_applied is not None and event.created < newest_applied:
        return Decision(Outcome.IGNORED_STALE)
    if event.type == "charge.refunded":
        return _refunded(event, payment)
    if event.type == "charge.dispute.created":
        return _disputed(event, payment)
    return _intent_event(event, payment)


def _waiting(payment: Recorded) -> bool:
    return payment.status == "pending" and payment.order_status == "pending_payment"


def _intent_event(event: Received, payment: Recorded) -> Decision:
    state = intent_state(event)
    if state is None:
        return Decision(Outcome.IGNORED_STATE)
    received = min(from_stripe_amount(state.captured, payment.currency), payment.order_total)
    if event.type == "payment_intent.payment_failed":
        if not _waiting(payment):
            return Decision(Outcome.IGNORED_STATE)
        error = _dict(event.obj.get("last_payment_error"))
        code, decline = _text(error.get("code"), 80), _text(error.get("decline_code"), 80)
        return Decision(Outcome.APPLIED, Action.FAIL_ATTEMPT, code=code, decline_code=decline)
    if event.type == "payment_intent.canceled":
        if _waiting(payment):
            return Decision(Outcome.APPLIED, Action.CANCEL_PENDING, code=PAYMENT_CANCELED)
        if payment.status == "authorised" and payment.captured == 0 and state.captured == 0:
            return Decision(Outcome.APPLIED, Action.VOID, reason=PAYMENT_CANCELED)
        return Decision(Outcome.IGNORED_STATE)  # money moved, or already released: nothing to undo
    final = event.type == "payment_intent.succeeded"
    if _waiting(payment):
        expected = to_stripe_amount(payment.order_total, payment.currency)
        if (state.amount, state.currency) != (expected, payment.currency):
            return Decision(Outcome.IGNORED_MISMATCH)
        if state.status not in (IntentStatus.REQUIRES_CAPTURE, IntentStatus.SUCCEEDED):
            return Decision(Outcome.IGNORED_STATE)
        status = _status_after("authorised", payment.order_total, received, 0, final=final)
        return Decision(Outcome.APPLIED, Action.AUTHORISE, captured=received, status=status, final=final, state=state)
    if _RANK.get(payment.status) is None or payment.status == "pending":
        return Decision(Outcome.IGNORED_STATE)  # voided, failed, or a pending payment on an order that moved on
    return _move(payment, min(received, payment.authorised), payment.refunded, final=final)


def _move(payment: Recorded, captured: int, refunded: int, *, final: bool, **extra: Any) -> Decision:
    captured, refunded = max(payment.captured, captured), max(payment.refunded, refunded)
    if (captured > payment.captured and payment.captures_in_flight) or (
        refunded > payment.refunded and payment.refunds_in_flight
    ):
        return Decision(Outcome.IGNORED_IN_FLIGHT)
    refunded = min(refunded, captured)
    status = _status_after(payment.status, payment.authorised, captured, refunded, final=final and captured > 0)
    if (captured, refunded, status) == (payment.captured, payment.refunded, payment.status):
        return Decision(Outcome.IGNORED_STATE)
    return Decision(
        Outcome.APPLIED, Action.MOVE, captured=captured, refunded=refunded, status=status, final=final, **extra
    )


def _refunded(event: Received, payment: Recorded) -> Decision:
    """A refund (ours, or made in Stripe's dashboard). Stripe counts the uncaptured remainder a
    final capture released as ``amount_refunded`` on the charge too (as ``stripe_gateway._state``
    reads it): only what was captured and went back is a refund. Only a multicapture payment
    still open keeps its remainder capturable."""
    charge = event.obj
    if _RANK.get(payment.status) is None or payment.status == "pending":
        return Decision(Outcome.IGNORED_STATE)
    currency = payment.currency
    amount, captured = charge.get("amount"), charge.get("amount_captured")
    if type(amount) is not int or type(captured) is not int:
        return Decision(Outcome.IGNORED_STATE)
    still_capturable = payment.multicapture and payment.status in LIVE
    released = 0 if still_capturable else max(0, amount - captured)
    refunded_stripe = max(0, _count(charge.get("amount_refunded")) - released)
    captured_minor = min(from_stripe_amount(captured, currency), payment.authorised)
    refunds = _dict(charge.get("refunds")).get("data")
    latest = _dict(refunds[0]) if isinstance(refunds, list) and refunds else {}
    return _move(
        payment,
        captured_minor,
        min(from_stripe_amount(refunded_stripe, currency), captured_minor),
        final=not still_capturable,
        external_id=_text(latest.get("id"), 255),
        reason=_text(latest.get("reason"), 255),
    )


def _disputed(event: Received, payment: Recorded) -> Decision:
    dispute = event.obj
    if event.object_id is None or event.object_id in payment.disputes:
        return Decision(Outcome.IGNORED_STATE)
    return Decision(
        Outcome.APPLIED,
        Action.DISPUTE,
        external_id=event.object_id,
        amount=from_stripe_amount(dispute.get("amount"), payment.currency),
        reason=_text(dispute.get("reason"), 255),
        code=_text(dispute.get("status"), 40),
    )
