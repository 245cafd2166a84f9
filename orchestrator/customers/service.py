"""One customer across channels: orders attach to whoever owns the normalised email or phone."""

from __future__ import annotations

from orchestrator.customers.model import normalise_email, normalise_phone
from orchestrator.orders.commands import CustomerDetails
from orchestrator.platform.errors import InvalidRequest


def normalise_details(details: CustomerDetails, phone_region: str) -> CustomerDetails:
    email = normalise_email(details.email) if details.email else None
    phone = normalise_phone(details.phone, phone_region) if details.phone else None
    if email is None and phone is None:
        raise InvalidRequest("a customer needs an email or a phone", field="customer")
    name = details.name.strip() if details.name else None
    return CustomerDetails(email=email, phone=phone, name=name or None)
