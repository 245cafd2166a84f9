"""Guest tracking: a customer without an account finds their order by its number and the email or
phone it was placed with, and gets a signed tracking token; the token then reads a redacted view
of the order (``public_view``), checks the customer in at the curbside, and applies one of the
changes the order offers, each through the use case the channels' endpoints use.

A wrong email or phone and an unknown number are the same ``NotFound`` after the same work (one
query, the comparisons of ``counter.verified``, a token always signed); so are a tampered, expired
or unknown token and a token whose order is gone. Guessing is bounded by the caller (a
``LookupLimit`` per address and per order number, ``public_api``).

Tokens are itsdangerous' ``URLSafeTimedSerializer`` over the order number, signed with the first
of the tracking secrets and verified with each (rotation). The time signed in is the app's clock,
and a token's age is reckoned against that clock too, never against the machine's: a test's
manual clock decides expiry alone."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select

from orchestrator.catalogue.tables import Location, Product
from orchestrator.customers.identities import offered_or_primary
from orchestrator.customers.model import normalise_email, normalise_phone
from orchestrator.customers.tables import Customer
from orchestrator.fulfillment import counter
from orchestrator.order_record.aggregate import OrderAggregate, load_order
from orchestrator.order_record.numbers import normalise_order_number
from orchestrator.order_record.tables import Order
from orchestrator.orders import changes
from orchestrator.orders.public_view import PublicOrderView, StoreFacts, public_view
from orchestrator.orders.views import view_of
from orchestrator.platform.actors import Actor
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import UnitOfWork
from orchestrator.platform.errors import InvalidRequest, NotFound
from orchestrator.settings import Settings

# One wording for an unknown number and a known one with the wrong email or phone.
LOOKUP_NOT_FOUND = "no order matches this number and email or phone"
# One wording for a token that does not verify, has expired, or names no order any more.
TRACKING_NOT_FOUND = "no order for this tracking link"
_SALT = "orchestrator.order-tracking"
# Whoever holds the token acts as the order's customer (``actor_kind`` customer on the timeline).
GUEST = Actor(kind="customer", id="tracking-link")


class _SignedAt(TimestampSigner):
    """Stamps the time it is given (the app's clock) instead of the machine's."""

    def __init__(self, *args: Any, issued_at: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.issued_at = issued_at

    def get_timestamp(self) -> int:
        return self.issued_at


@dataclass(frozen=True, slots=True)
class Issued:
    token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class TrackingTokens:
    """``secrets``: the signing one first, then those that still verify."""

    secrets: tuple[str, ...]
    ttl: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> TrackingTokens:
        return cls(tuple(settings.tracking_secret_values), timedelta(days=settings.tracking_token_ttl_days))

    def issue(self, number: str, now: datetime) -> Issued:
        issued_at = int(now.timestamp())
        # itsdangerous signs with the last key of its list and verifies with each.
        signing = URLSafeTimedSerializer(
            list(reversed(self.secrets)), salt=_SALT, signer=_SignedAt, signer_kwargs={"issued_at": issued_at}
        )
        token = signing.dumps(number)
        return Issued(token if isinstance(token, str) else token.decode(), _at(issued_at) + self.ttl)

    def number_of(self, token: str, now: datetime) -> str | None:
        """The order number the token was issued for, while it lives; None when it does not
        verify under any of the secrets or is older than ``ttl`` by ``now``."""
        verifying = URLSafeTimedSerializer(list(reversed(self.secrets)), salt=_SALT)
        try:
            number, signed_at = verifying.loads(token, return_timestamp=True)
        except (BadData, UnicodeError, ValueError):
            return None
        if not isinstance(number, str) or now - signed_at >= self.ttl:
            return None
        return number


def _at(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


@dataclass(frozen=True, slots=True)
class GuestLookup:
    """The order number and exactly one of the email or phone it was placed with."""

    number: str
    email: str | None = None
    phone: str | None = None


def offered(lookup: GuestLookup, phone_region: str) -> counter.Offered:
    """The verifier as the customers table stores it. A malformed one is a 422 that says nothing
    about any order."""
    if (lookup.email is None) == (lookup.phone is None):
        raise InvalidRequest("send the order's email or its phone (one of them)", field="email")
    try:
        email = normalise_email(lookup.email) if lookup.email is not None else None
    except InvalidRequest as exc:
        raise InvalidRequest(exc.detail, field="email") from None
    try:
        phone = normalise_phone(lookup.phone, phone_region) if lookup.phone is not None else None
    except InvalidRequest as exc:
        raise InvalidRequest(exc.detail, field="phone") from None
    return counter.Offered(email=email, phone=phone, code=None)


async def look_up(
    uow: UnitOfWork, lookup: GuestLookup, tokens: TrackingTokens, *, phone_region: str, now: datetime
) -> Issued:
    """A tracking token for the order, or ``NotFound`` (the same for every failure)."""
    offer = offered(lookup, phone_region)
    number = normalise_order_number(lookup.number)
    row = (
        await uow.session.execute(
            select(
                offered_or_primary(Customer.id, "email", offer.email, Customer.email).label("email"),
                offered_or_primary(Customer.id, "phone", offer.phone, Customer.phone).label("phone"),
            )
            .join(Order, Order.customer_id == Customer.id)
            .where(Order.number == number)
        )
    ).first()
    candidate = counter.Candidate(row.email, row.phone, ()) if row else None
    # Signed whatever the answer: a found order must not take longer than a refused one.
    issued = tokens.issue(number, now)
    # No pickup code opens a tracking token (it is meant for the counter): ``code`` is None.
    if not counter.verified(candidate, offer, "", now):
        raise NotFound(LOOKUP_NOT_FOUND)
    return issued


async def tracked_id(uow: UnitOfWork, tokens: TrackingTokens, token: str, now: datetime) -> uuid.UUID:
    """The id of the order the token names, or ``NotFound``. Nothing of the order is loaded: a
    writer loads it locked itself (rows loaded before the lock would be kept as they were read)."""
    number = tokens.number_of(token, now)
    order_id = None
    if number is not None:
        order_id = await uow.session.scalar(select(Order.id).where(Order.number == number))
    if order_id is None:
        raise NotFound(TRACKING_NOT_FOUND)
    return order_id


async def tracked(uow: UnitOfWork, tokens: TrackingTokens, token: str, now: datetime) -> OrderAggregate:
    """The order the token names, or ``NotFound``."""
    return await load_order(uow.session, await tracked_id(uow, tokens, token, now), GUEST)


async def view(uow: UnitOfWork, aggregate: OrderAggregate, now: datetime) -> PublicOrderView:
    """The redacted view, with the product names, the stores' names and towns, and the customer
    status the channels' view words at ``now``."""
    session = uow.session
    skus = sorted({ln.sku for ln in aggregate.lines})
    names = dict((await session.execute(select(Product.sku, Product.name).where(Product.sku.in_(skus)))).all())
    ids = {f.location_id for f in aggregate.fulfillments}
    if aggregate.order.pickup_location_id is not None:
        ids.add(aggregate.order.pickup_location_id)
    rows = await session.execute(
        select(Location.id, Location.code, Location.name, Location.address).where(Location.id.in_(ids))
    )
    stores = {
        i: StoreFacts(code, name, (address or {}).get("city"), (address or {}).get("country"))
        for i, code, name, address in rows.all()
    }
    return public_view(aggregate, names, stores, view_of(aggregate, now).customer_status)


async def read(uow: UnitOfWork, tokens: TrackingTokens, token: str, now: datetime) -> PublicOrderView:
    return await view(uow, await tracked(uow, tokens, token, now), now)


async def arrive(
    uow: UnitOfWork, tokens: TrackingTokens, token: str, clock: Clock, parking_spot: str | None, vehicle: str | None
) -> PublicOrderView:
    """The curbside check-in, as ``POST /v1/orders/{id}/arrival`` records it; the order as it is then."""
    order_id = await tracked_id(uow, tokens, token, clock.now())
    await changes.record_arrival(uow, order_id, GUEST, clock, parking_spot, vehicle)
    return await view(uow, await load_order(uow.session, order_id, GUEST), clock.now())


@dataclass(frozen=True, slots=True)
class Chosen:
    """An option the order offers, with the version it was offered at: the change is applied
    against that version (412 if the order moved on in between)."""

    order_id: uuid.UUID
    version: int
    change: dict[str, Any]


async def chosen_option(uow: UnitOfWork, tokens: TrackingTokens, token: str, option: str, now: datetime) -> Chosen:
    """The ``change`` body of the option the order offers under this id; 422 for any other."""
    order = (await tracked(uow, tokens, token, now)).order
    offered_now = {o["id"]: o for o in order.action_options or []}
    if option not in offered_now:
        detail = "the order offers no such option" if offered_now else "the order offers no changes now"
        raise InvalidRequest(detail, field="option", offered=sorted(offered_now))
    return Chosen(order.id, order.version, offered_now[option]["change"])


async def read_by_id(uow: UnitOfWork, order_id: uuid.UUID, now: datetime) -> PublicOrderView:
    return await view(uow, await load_order(uow.session, order_id, GUEST), now)
