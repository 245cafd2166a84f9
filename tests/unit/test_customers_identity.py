"""A customer's identity keys: the normalised email and phone an order is matched on."""

from __future__ import annotations

import pytest

from orchestrator.customers.model import CustomerDetails, identify
from orchestrator.platform.errors import InvalidRequest


def test_identity_keys_are_the_normalised_email_and_phone_and_the_trimmed_name() -> None:
    identity = identify(CustomerDetails(" Ann@Example.COM ", "(415) 555-0100", "  Ann "), "US")
    assert identity == CustomerDetails("ann@example.com", "+14155550100", "Ann")


def test_a_blank_name_is_no_name() -> None:
    assert identify(CustomerDetails(email="a@example.com", name="   "), "US").name is None


def test_a_customer_needs_an_email_or_a_phone() -> None:
    with pytest.raises(InvalidRequest) as raised:
        identify(CustomerDetails(name="Ann"), "US")
    assert raised.value.field == "customer"
