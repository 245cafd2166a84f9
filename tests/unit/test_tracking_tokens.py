"""Guest tracking tokens: signed with the first secret, verified with each (rotation), aged by the
clock handed in (never the machine's), and nothing but the issued number comes out of one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.orders.public_lookup import GuestLookup, TrackingTokens, offered
from orchestrator.platform.errors import InvalidRequest
from orchestrator.settings import Settings

# Far from the real time on purpose: a token aged by the machine's clock would be expired (or
# not yet issued) here, one aged by the clock handed in is not.
NOW = datetime(2031, 3, 1, 12, 0, tzinfo=UTC)
TTL = timedelta(days=30)


def tokens(*secrets: str) -> TrackingTokens:
    return TrackingTokens(secrets, TTL)


def test_a_token_names_its_order_until_the_ttl_has_passed_by_the_clock_handed_in():
    issued = tokens("s1").issue("R7K-2Q9M", NOW)
    assert issued.expires_at == NOW + TTL
    assert tokens("s1").number_of(issued.token, NOW) == "R7K-2Q9M"
    assert tokens("s1").number_of(issued.token, NOW + TTL - timedelta(seconds=1)) == "R7K-2Q9M"
    assert tokens("s1").number_of(issued.token, NOW + TTL) is None


def test_a_token_signed_with_a_listed_old_secret_verifies_and_an_unlisted_one_does_not():
    old = tokens("old").issue("R7K-2Q9M", NOW).token
    assert tokens("new", "old").number_of(old, NOW) == "R7K-2Q9M"
    assert tokens("new").number_of(old, NOW) is None
    # The first secret signs: a token made during the rotation outlives the old secret.
    during = tokens("new", "old").issue("R7K-2Q9M", NOW).token
    assert tokens("new").number_of(during, NOW) == "R7K-2Q9M"
    assert tokens("old").number_of(during, NOW) is None


def _flip(text: str) -> str:
    # The first character: the last one of unpadded base64 also carries bits that decode to nothing.
    return ("A" if text[0] != "A" else "B") + text[1:]


@pytest.mark.parametrize("part", [0, 1, 2])  # the payload, the time, the signature
def test_a_tampered_token_names_nothing(part):
    for number in ("R7K-2Q9M", "ABC-DEFG", "000-0000"):
        parts = tokens("s1").issue(number, NOW).token.split(".")
        parts[part] = _flip(parts[part])
        assert tokens("s1").number_of(".".join(parts), NOW) is None


@pytest.mark.parametrize("garbage", ["", "a", "a.b", "a.b.c", "....", "é.é.é", "x" * 5000])
def test_garbage_names_nothing(garbage):
    assert tokens("s1").number_of(garbage, NOW) is None


def test_the_secrets_are_comma_separated_and_derived_from_the_server_secret_when_unset():
    assert Settings(tracking_secrets=" new , old,, ").tracking_secret_values == ["new", "old"]
    derived = Settings(secret_key="server-1").tracking_secret_values
    assert derived == Settings(secret_key="server-1").tracking_secret_values
    assert derived != ["server-1"] and derived != Settings(secret_key="server-2").tracking_secret_values
    assert Settings().tracking_token_ttl_days == 30
    assert TrackingTokens.from_settings(Settings(tracking_token_ttl_days=2)).ttl == timedelta(days=2)


def test_a_lookup_names_exactly_one_verifier_and_reads_it_as_stored():
    assert offered(GuestLookup("R7K-2Q9M", email=" Ann@Example.COM "), "US").email == "ann@example.com"
    assert offered(GuestLookup("R7K-2Q9M", phone="(415) 555-0100"), "US").phone == "+14155550100"
    for wrong in (GuestLookup("R7K-2Q9M"), GuestLookup("R7K-2Q9M", email="a@example.com", phone="+14155550100")):
        with pytest.raises(InvalidRequest):
            offered(wrong, "US")
    with pytest.raises(InvalidRequest) as bad:
        offered(GuestLookup("R7K-2Q9M", phone="12"), "US")
    assert bad.value.field == "phone"
