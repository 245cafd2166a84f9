"""One customer across channels: identities are matched on a normalised email or phone."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from orchestrator.platform.errors import InvalidRequest


@dataclass(frozen=True, slots=True)
class CustomerDetails:
    """Who an order is for, as a channel sent it (or, after ``identify``, normalised)."""

    email: str | None = None
    phone: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """A customer as stored: the identity an order attaches to."""

    id: uuid.UUID
    email: str | None
    phone: str | None
    name: str | None


@lru_cache(maxsize=65536)
def normalise_email(raw: str) -> str:
    """Lower-cased, syntax-checked address (no DNS lookups: intake must not wait on the network)."""
    try:
        checked = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidRequest(f"invalid email: {exc}", field="customer.email") from None
    return checked.normalized.lower()


@lru_cache(maxsize=65536)
def normalise_phone(raw: str, default_region: str) -> str:
    """E.164 (``+14155550100``); numbers without a country code are read in ``default_region``."""
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidRequest(f"invalid phone: {exc}", field="customer.phone") from None
    # Exactly IS_POSSIBLE: a local-only number ("12", "555 0100") lacks its area code, so its
    # "E.164" form would be no one's number and would merge every customer who typed it.
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
        raise InvalidRequest("invalid phone: not a possible number", field="customer.phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def identify(details: CustomerDetails, phone_region: str) -> CustomerDetails:
    """The identity keys an order is matched on: the normalised email and phone (at least one),
    and the name as given, trimmed. Matching itself (``customers/sql.py``): the email's owner
    first, else the phone's."""
    email = normalise_email(details.email) if details.email else None
    phone = normalise_phone(details.phone, phone_region) if details.phone else None
    if email is None and phone is None:
        raise InvalidRequest("a customer needs an email or a phone", field="customer")
    name = details.name.strip() if details.name else None
    return CustomerDetails(email=email, phone=phone, name=name or None)
