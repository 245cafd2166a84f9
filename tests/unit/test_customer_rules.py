"""The customers capability's pure rules: identity normalisation, what an order is matched on,
preferred contacts, and when a merge is needed, repeated or refused."""

from __future__ import annotations

import uuid

import pytest

from orchestrator.customers.model import (
    CustomerDetails,
    MergeConflict,
    MergeSide,
    check_preferred_contact,
    identify,
    merge_needed,
    normalise_identity,
    suggestion_pairs,
)
from orchestrator.platform.errors import InvalidRequest, NotFound


@pytest.mark.parametrize(
    ("kind", "raw", "stored"),
    [
        ("email", " Ann@Example.COM ", "ann@example.com"),
        ("phone", "(415) 555-0100", "+14155550100"),
        ("loyalty_id", "  CARD-7 ", "CARD-7"),
        ("account", "Shopify:123", "shopify:123"),
        ("account", "amazon: AB12 ", "amazon:AB12"),
        ("account", "marketplace.x_y-z:a:b", "marketplace.x_y-z:a:b"),
    ],
)
def test_identities_are_stored_normalised(kind, raw, stored):
    assert normalise_identity(kind, raw, "US") == stored


@pytest.mark.parametrize(
    ("kind", "raw", "field"),
    [
        ("email", "not-an-email", "value"),
        ("phone", "12", "value"),
        ("loyalty_id", "   ", "value"),
        ("loyalty_id", "x" * 65, "value"),
        ("account", "no-platform", "value"),
        ("account", "sho pify:1", "value"),
        ("account", "shopify:", "value"),
        ("account", "shopify:" + "1" * 200, "value"),
        ("passport", "X1", "kind"),
    ],
)
def test_an_invalid_identity_names_its_field(kind, raw, field):
    with pytest.raises(InvalidRequest) as refused:
        normalise_identity(kind, raw, "US")
    assert refused.value.field == field


def test_an_order_is_matched_on_any_one_identity_in_resolution_order():
    only_card = identify(CustomerDetails(loyalty_id=" L-1 "), "US")
    assert only_card.identities == [("loyalty_id", "L-1")]
    every = identify(CustomerDetails("A@x.com", "415 555 0100", "Ann", "L-1", "Shopify:9"), "US")
    assert [kind for kind, _ in every.identities] == ["email", "phone", "loyalty_id", "account"]
    with pytest.raises(InvalidRequest) as refused:
        identify(CustomerDetails(name="Ann"), "US")
    assert refused.value.field == "customer"
    with pytest.raises(InvalidRequest) as bad:
        identify(CustomerDetails(account="nope"), "US")
    assert bad.value.field == "customer.account"


def test_a_preferred_contact_is_one_of_the_customers_identities_its_channel_reaches():
    owned = [("email", "a@x.com"), ("phone", "+14155550100"), ("loyalty_id", "L-1")]
    check_preferred_contact("email", "a@x.com", owned)
    check_preferred_contact("sms", "+14155550100", owned)
    check_preferred_contact("whatsapp", "+14155550100", owned)
    check_preferred_contact("push", "L-1", owned)
    for channel, identity in [("email", "+14155550100"), ("sms", "a@x.com"), ("sms", "+14155550199")]:
        with pytest.raises(InvalidRequest) as refused:
            check_preferred_contact(channel, identity, owned)
        assert refused.value.field == "preferred_contact.identity"


A, B, C = (uuid.UUID(int=i) for i in (1, 2, 3))


def test_a_merge_is_needed_once_repeated_as_a_no_op_and_refused_across_other_merges():
    assert merge_needed(MergeSide(A, None), MergeSide(B, None)) is True
    assert merge_needed(MergeSide(A, None), MergeSide(B, A)) is False  # done already: idempotent
    with pytest.raises(MergeConflict):
        merge_needed(MergeSide(B, A), MergeSide(A, None))  # the other way round
    with pytest.raises(MergeConflict):
        merge_needed(MergeSide(C, None), MergeSide(B, A))  # merged elsewhere already
    with pytest.raises(InvalidRequest):
        merge_needed(MergeSide(A, None), MergeSide(A, None))
    with pytest.raises(NotFound):
        merge_needed(MergeSide(A, None), None)


def test_suggestions_hold_each_pair_once_in_canonical_order_with_its_identities():
    pairs = suggestion_pairs(B, [(C, "phone", "+1"), (A, "loyalty_id", "L"), (C, "account", "x:1")])
    assert pairs == [
        {"first_id": str(B), "second_id": str(C), "identities": [["phone", "+1"], ["account", "x:1"]]},
        {"first_id": str(A), "second_id": str(B), "identities": [["loyalty_id", "L"]]},
    ]
