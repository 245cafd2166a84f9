"""The counter lookup: a customer stands at store Y with an order meant for store X. Y's staff find
it by its number and one thing only the customer knows (their email, their phone, or the pickup
code they were sent), and may then read it and move its pickup to Y for ``GRANT_LIFETIME``.

Whatever is wrong (no such number, no verifier, a wrong one) is the same ``NotFound`` after the
same work: the same queries and a constant-time comparison of every verifier, so neither the answer
nor its timing tells a store which numbers exist. Guessing is bounded by ``LookupLimit`` per key.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import select

from orchestrator.customers.identities import offered_or_primary
from orchestrator.customers.model import normalise_email, normalise_phone
from orchestrator.customers.tables import Customer
from orchestrator.fulfillment.counter_tables import PickupLookupGrant
from orchestrator.fulfillment.pickup import code_matches
from orchestrator.order_record.numbers import normalise_order_number
from orchestrator.order_record.states import Method, Status
from orchestrator.order_record.tables import FulfillmentOrder, Order
from orchestrator.platform.actors import Actor
from orchestrator.platform.db import UnitOfWork
from orchestrator.platform.errors import InvalidRequest, NotFound, RateLimited

GRANT_LIFETIME = timedelta(minutes=15)
# One wording for an unknown number and for a known one without a matching verifier.
LOOKUP_NOT_FOUND = "no order matches this number and verifier"
_PICKUP_METHODS = [Method.PICKUP.value, Method.CURBSIDE.value]


@dataclass(frozen=True, slots=True)
class Lookup:
    number: str
    verify: str | None
    location: str | None


@dataclass(frozen=True, slots=True)
class Offered:
    """The verifier as each kind would read it (None where it cannot be one)."""

    email: str | None
    phone: str | None
    code: str | None


@dataclass(frozen=True, slots=True)
class ReadyPickup:
    id: uuid.UUID
    code_issue: int
    locked_until: datetime | None


@dataclass(frozen=True, slots=True)
class Candidate:
    """The order the number names, with what a verifier is compared against."""

    email: str | None
    phone: str | None
    pickups: Sequence[ReadyPickup]


def _or_none(normalise: Callable[[str], str], text: str) -> str | None:
    try:
        return normalise(text) if text else None
    except InvalidRequest:
        return None


def offered(verify: str | None, phone_region: str) -> Offered:
    """One string, read as all three kinds: the customer says which they have, not the staff."""
    text = (verify or "").strip()
    return Offered(
        email=_or_none(normalise_email, text),
        phone=_or_none(lambda t: normalise_phone(t, phone_region), text),
        code=text or None,
    )


def _same(offer: str | None, stored: str | None) -> bool:
    # Digests of one length: the comparison's time depends neither on the lengths nor on where
    # the strings differ; a missing side is compared too, and then fails.
    a = hashlib.sha256((offer or "").encode()).digest()
    b = hashlib.sha256((stored or "").encode()).digest()
    return hmac.compare_digest(a, b) & (offer is not None) & (stored is not None)


# Stands in for the pickups of an order that has none ready (or does not exist): a code is always
# derived and compared, so the work does not say whether one was there.
_NO_PICKUP = (ReadyPickup(uuid.UUID(int=0), 1, None),)


def verified(candidate: Candidate | None, offer: Offered, secret: str, now: datetime) -> bool:
    """Whether ``offer`` is the candidate customer's email or phone, or the current code of one of
    its ready pickups that is not locked (a locked pickup is being guessed at). Every comparison
    runs (``&``/``|``, never short-circuiting), whatever the candidate."""
    known = candidate is not None
    email = candidate.email if candidate else None
    phone = candidate.phone if candidate else None
    matched = _same(offer.email, email) | _same(offer.phone, phone)
    real = bool(candidate and candidate.pickups)
    for p in candidate.pickups if candidate and candidate.pickups else _NO_PICKUP:
        unlocked = p.locked_until is None or p.locked_until <= now
        matched |= code_matches(secret, p.id, p.code_issue, offer.code) & unlocked & real
    return known & matched


def counter_location(actor: Actor, named: str | None) -> str:
    """The store the lookup is made for: the one named (one of the key's), else the key's only one."""
    if named is not None:
        if named not in actor.locations:
            raise InvalidRequest(f"this key does not serve location {named}", field="location")
        return named
    if len(actor.locations) != 1:
        raise InvalidRequest("this key serves several stores: name the location of the counter", field="location")
    return next(iter(actor.locations))


async def _candidate(uow: UnitOfWork, number: str, offer: Offered) -> tuple[uuid.UUID | None, Candidate | None]:
    session = uow.session
    # Any of the customer's emails (phones) verifies: one an order used before a merge too.
    email = offered_or_primary(Customer.id, "email", offer.email, Customer.email).label("email")
    phone = offered_or_primary(Customer.id, "phone", offer.phone, Customer.phone).label("phone")
    row = (
        await session.execute(
            select(Order.id, email, phone)
            .join(Customer, Customer.id == Order.customer_id)
            .where(Order.number == number)
        )
    ).first()
    # The pickups are asked for even without an order (under an id no order has): the same queries.
    order_id = row.id if row else uuid.uuid4()
    pickups = await session.execute(
        select(FulfillmentOrder.id, FulfillmentOrder.pickup_code_issue, FulfillmentOrder.pickup_locked_until)
        .where(
            FulfillmentOrder.order_id == order_id,
            FulfillmentOrder.status == Status.READY_FOR_PICKUP.value,
            FulfillmentOrder.method.in_(_PICKUP_METHODS),
        )
        .order_by(FulfillmentOrder.id)
    )
    ready = [ReadyPickup(i, issue, locked) for i, issue, locked in pickups.all()]
    if row is None:
        return None, None
    return row.id, Candidate(row.email, row.phone, ready)


async def look_up(
    uow: UnitOfWork, actor: Actor, lookup: Lookup, *, secret: str, phone_region: str, now: datetime
) -> uuid.UUID:
    """The order the number and verifier name, with a grant recorded for this key at its counter's
    store until ``now + GRANT_LIFETIME``; else ``NotFound``, the same for every failure."""
    location = counter_location(actor, lookup.location)
    offer = offered(lookup.verify, phone_region)
    order_id, candidate = await _candidate(uow, normalise_order_number(lookup.number), offer)
    if not verified(candidate, offer, secret, now) or order_id is None:
        raise NotFound(LOOKUP_NOT_FOUND)
    uow.session.add(
        PickupLookupGrant(
            api_key_id=uuid.UUID(actor.key_id or ""),
            order_id=order_id,
            location_code=location,
            granted_at=now,
            expires_at=now + GRANT_LIFETIME,
        )
    )
    # Written now: the grant is read by table name (``lookup_grant``), which does not autoflush.
    await uow.session.flush()
    return order_id


@dataclass(frozen=True, slots=True)
class LookupLimit:
    """At most ``attempts`` lookups per key in each fixed window of ``window`` (failures count).
    The counter's limit is per API key; other lookups count under their own ``scope`` per what
    ``per`` names (the guest lookup: per client address and per order number).

    The window is computed from the injected clock and named in the Redis key, so a test's manual
    clock decides it; the key's TTL only cleans up, long after its window has passed."""

    attempts: int = 10
    window: timedelta = timedelta(minutes=1)
    cleanup_after: timedelta = timedelta(hours=1)
    scope: str = "pickup-lookup"
    per: str = "key"

    def slot(self, now: datetime) -> tuple[int, int]:
        """(the window's number, seconds until the next window opens; at least 1)."""
        seconds = self.window.total_seconds()
        at = now.timestamp()
        number = math.floor(at / seconds)
        return number, max(1, math.ceil((number + 1) * seconds - at))

    async def count(self, redis: Redis, key_id: str, now: datetime) -> None:
        """One more attempt by ``key_id``; ``RateLimited`` past the window's allowance."""
        number, retry_after = self.slot(now)
        name = f"{self.scope}:{key_id}:{number}"
        async with redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, int(self.cleanup_after.total_seconds()))
            attempts, _ = await pipe.execute()
        if attempts > self.attempts:
            raise RateLimited(
                f"at most {self.attempts} lookups per {int(self.window.total_seconds())} s per {self.per}; "
                f"try again in {retry_after} s",
                retry_after=retry_after,
            )
