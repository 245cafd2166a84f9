"""One customer across channels: the identities a person is recognised by, normalised, and the
rules of merging two customers and of how they are contacted. Pure: no database, no HTTP."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from orchestrator.platform.errors import Conflict, DomainError, InvalidRequest, NotFound

CUSTOMER_NOT_FOUND = "customer not found"


class IdentityKind(StrEnum):
    """The ways a customer is recognised, in the order intake resolves an order by (its email's
    owner first, else its phone's, ...). ``account``: ``<platform>:<id>`` on a channel's platform."""

    EMAIL = "email"
    PHONE = "phone"
    LOYALTY_ID = "loyalty_id"
    ACCOUNT = "account"


Identity = tuple[str, str]  # (kind, value), normalised

_ACCOUNT = re.compile(r"^([A-Za-z0-9_.-]+):(.+)$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class CustomerDetails:
    """Who an order is for, as a channel sent it (or, after ``identify``, normalised)."""

    email: str | None = None
    phone: str | None = None
    name: str | None = None
    loyalty_id: str | None = None
    account: str | None = None

    @property
    def identities(self) -> list[Identity]:
        """The identities given, in the order intake resolves by."""
        given = (self.email, self.phone, self.loyalty_id, self.account)
        return [(kind.value, value) for kind, value in zip(IdentityKind, given, strict=True) if value]


@dataclass(frozen=True, slots=True)
class Matching:
    """How intake matches an order to its customer: the region a phone number without a country
    code is read in, and whether customers the order shows to be one person merge at once
    (``ORCHESTRATOR_CUSTOMER_AUTO_MERGE``) or wait for an admin (a merge suggestion)."""

    phone_region: str = "US"
    auto_merge: bool = False


AS_SET_UP_BY_DEFAULT = Matching()


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """A customer as stored: the identity an order attaches to."""

    id: uuid.UUID
    email: str | None
    phone: str | None
    name: str | None


@lru_cache(maxsize=65536)
def normalise_email(raw: str, field: str = "customer.email") -> str:
    """Lower-cased, syntax-checked address (no DNS lookups: intake must not wait on the network)."""
    try:
        checked = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidRequest(f"invalid email: {exc}", field=field) from None
    return checked.normalized.lower()


@lru_cache(maxsize=65536)
def normalise_phone(raw: str, default_region: str, field: str = "customer.phone") -> str:
    """E.164 (``+14155550100``); numbers without a country code are read in ``default_region``."""
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidRequest(f"invalid phone: {exc}", field=field) from None
    # Exactly IS_POSSIBLE: a local-only number ("12", "555 0100") lacks its area code, so its
    # "E.164" form would be no one's number and would merge every customer who typed it.
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
        raise InvalidRequest("invalid phone: not a possible number", field=field)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_loyalty_id(raw: str, field: str = "customer.loyalty_id") -> str:
    value = raw.strip()
    if not 1 <= len(value) <= 64:
        raise InvalidRequest("a loyalty id is 1 to 64 characters", field=field)
    return value


def normalise_account(raw: str, field: str = "customer.account") -> str:
    """``<platform>:<id>``: the platform lower-cased (``Shopify:123`` is ``shopify:123``), the id as
    the platform wrote it (ids are case-sensitive on some platforms)."""
    match = _ACCOUNT.match(raw.strip())
    if match is None or not match.group(2).strip():
        raise InvalidRequest("an account is '<platform>:<id>', e.g. 'shopify:123'", field=field)
    value = f"{match.group(1).lower()}:{match.group(2).strip()}"
    if len(value) > 200:
        raise InvalidRequest("an account is at most 200 characters", field=field)
    return value


def normalise_identity(kind: str, raw: str, phone_region: str, field: str = "value") -> str:
    """One identity's value as stored, whatever its kind (``InvalidRequest`` on ``field``)."""
    if kind == IdentityKind.EMAIL:
        return normalise_email(raw, field)
    if kind == IdentityKind.PHONE:
        return normalise_phone(raw, phone_region, field)
    if kind == IdentityKind.LOYALTY_ID:
        return normalise_loyalty_id(raw, field)
    if kind == IdentityKind.ACCOUNT:
        return normalise_account(raw, field)
    raise InvalidRequest(f"unknown identity kind {kind!r}: one of {', '.join(IdentityKind)}", field="kind")


def identify(details: CustomerDetails, phone_region: str) -> CustomerDetails:
    """The identities an order is matched on, normalised (at least one, of any kind), and the
    name as given, trimmed. Matching itself (``customers/sql.py``): the owner of the order's email
    first, else of its phone, else of its loyalty id, else of its account."""
    found = CustomerDetails(
        email=normalise_email(details.email) if details.email else None,
        phone=normalise_phone(details.phone, phone_region) if details.phone else None,
        name=(details.name.strip() or None) if details.name else None,
        loyalty_id=normalise_loyalty_id(details.loyalty_id) if details.loyalty_id else None,
        account=normalise_account(details.account) if details.account else None,
    )
    if not found.identities:
        raise InvalidRequest("a customer needs an email, a phone, a loyalty id or an account", field="customer")
    return found


# --- contact ---------------------------------------------------------------------------------------

# The identity kinds a notification channel can reach (``push``: the app reaches whoever it knows).
CONTACT_KINDS: dict[str, frozenset[str]] = {
    "email": frozenset({IdentityKind.EMAIL.value}),
    "sms": frozenset({IdentityKind.PHONE.value}),
    "whatsapp": frozenset({IdentityKind.PHONE.value}),
    "push": frozenset(IdentityKind),
}


def check_preferred_contact(channel: str, identity: str, identities: list[Identity]) -> None:
    """A preferred contact names one of the customer's own identities, of a kind its channel reaches."""
    kinds = CONTACT_KINDS.get(channel)
    if kinds is None:
        raise InvalidRequest(f"unknown contact channel {channel!r}", field="preferred_contact.channel")
    if not any(kind in kinds and value == identity for kind, value in identities):
        raise InvalidRequest(
            f"{channel} needs one of the customer's {' or '.join(sorted(kinds))} identities",
            field="preferred_contact.identity",
        )


# --- merging ---------------------------------------------------------------------------------------


class CustomerMerged(DomainError):
    """The customer was merged into another: the API answers 308 to the survivor."""

    def __init__(self, customer_id: uuid.UUID, survivor: uuid.UUID) -> None:
        super().__init__(f"customer {customer_id} was merged into {survivor}", merged_into=str(survivor))
        self.survivor = survivor


class MergeConflict(Conflict):
    """One of the two customers was already merged, into someone else."""


@dataclass(frozen=True, slots=True)
class MergeSide:
    id: uuid.UUID
    merged_into: uuid.UUID | None


def merge_needed(survivor: MergeSide | None, merged: MergeSide | None) -> bool:
    """Whether ``merged`` is still to be merged into ``survivor``: ``False`` when it already was
    (a repeated merge is the same merge); refused when either is gone into someone else."""
    if survivor is None or merged is None:
        raise NotFound(CUSTOMER_NOT_FOUND)
    if survivor.id == merged.id:
        raise InvalidRequest("a customer cannot be merged into itself", field="merged_id")
    if survivor.merged_into is not None:
        raise MergeConflict(f"customer {survivor.id} was merged into {survivor.merged_into}: merge into that one")
    if merged.merged_into == survivor.id:
        return False
    if merged.merged_into is not None:
        raise MergeConflict(f"customer {merged.id} was already merged into {merged.merged_into}")
    return True


def suggestion_pairs(customer_id: uuid.UUID, others: list[tuple[uuid.UUID, str, str]]) -> list[dict]:
    """One suggestion per other customer whose identities an order carried, the pair in canonical
    order (``first_id < second_id``), with those identities."""
    by_customer: dict[uuid.UUID, list[list[str]]] = {}
    for other, kind, value in others:
        by_customer.setdefault(other, []).append([kind, value])
    return [
        {
            "first_id": str(min(customer_id, other)),
            "second_id": str(max(customer_id, other)),
            "identities": identities,
        }
        for other, identities in by_customer.items()
    ]


# --- interactions ----------------------------------------------------------------------------------

INTERACTION_KINDS = frozenset({"chat", "phone", "whatsapp", "email", "store_visit", "social"})
