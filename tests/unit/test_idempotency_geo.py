"""Idempotency fingerprints and advisory-lock ids; distances between coordinates."""

from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.platform.geo import EARTH_RADIUS_KM, Coordinates, distance_km
from orchestrator.platform.idempotency import lock_id, request_fingerprint

# --- idempotency -----------------------------------------------------------------------------

BODY = {"channel": "web", "lines": [{"sku": "A", "quantity": 2}], "customer": {"email": "a@b.de"}}


def test_the_fingerprint_is_a_sha256_hex_digest() -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", request_fingerprint("POST", "/v1/orders", BODY))


def test_the_same_document_in_another_key_order_has_the_same_fingerprint() -> None:
    reordered = {
        "customer": {"email": "a@b.de"},
        "lines": [{"quantity": 2, "sku": "A"}],
        "channel": "web",
    }
    assert request_fingerprint("POST", "/v1/orders", BODY) == request_fingerprint("POST", "/v1/orders", reordered)


def test_the_same_document_parsed_from_differently_spaced_json_has_the_same_fingerprint() -> None:
    compact = json.loads('{"b":1,"a":[1,2]}')
    spaced = json.loads('{\n  "a" : [ 1, 2 ],\n  "b" : 1\n}')
    assert request_fingerprint("POST", "/x", compact) == request_fingerprint("POST", "/x", spaced)


@pytest.mark.parametrize(
    "other",
    [
        {**BODY, "channel": "app"},
        {**BODY, "lines": [{"sku": "A", "quantity": 3}]},
        {**BODY, "lines": [{"sku": "A", "quantity": 2}, {"sku": "A", "quantity": 2}]},
        {k: v for k, v in BODY.items() if k != "customer"},
        {**BODY, "extra": None},
    ],
)
def test_a_different_body_has_a_different_fingerprint(other: dict) -> None:
    assert request_fingerprint("POST", "/v1/orders", other) != request_fingerprint("POST", "/v1/orders", BODY)


def test_list_order_is_part_of_the_request() -> None:
    assert request_fingerprint("POST", "/x", [1, 2]) != request_fingerprint("POST", "/x", [2, 1])


def test_method_and_path_are_part_of_the_fingerprint() -> None:
    base = request_fingerprint("POST", "/v1/orders", BODY)
    assert request_fingerprint("PUT", "/v1/orders", BODY) != base
    assert request_fingerprint("POST", "/v1/orders/1/cancel", BODY) != base


def test_an_empty_body_differs_from_a_missing_one() -> None:
    assert request_fingerprint("POST", "/x", None) != request_fingerprint("POST", "/x", {})


def test_non_ascii_text_is_fingerprinted_not_rejected() -> None:
    a = request_fingerprint("POST", "/x", {"name": "Jürgen"})
    assert a != request_fingerprint("POST", "/x", {"name": "Jurgen"})
    assert a == request_fingerprint("POST", "/x", {"name": "Jürgen"})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=4), json_values, max_size=5))
def test_property_key_order_never_changes_the_fingerprint(body: dict) -> None:
    reversed_body = dict(reversed(list(body.items())))
    assert request_fingerprint("POST", "/p", body) == request_fingerprint("POST", "/p", reversed_body)


@settings(max_examples=100, deadline=None)
@given(json_values, json_values)
def test_property_different_documents_have_different_fingerprints(a, b) -> None:
    same = json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert (request_fingerprint("POST", "/p", a) == request_fingerprint("POST", "/p", b)) == same


def test_lock_id_is_stable_across_processes_and_releases() -> None:
    # Fixed values: a process computing another number would not hold the other's lock.
    assert lock_id("channel:web", "order-123") == 4817402637484421372
    assert lock_id("a", "b") == -17643764250920285


def test_lock_id_differs_per_principal_and_key() -> None:
    assert lock_id("channel:web", "k1") != lock_id("channel:app", "k1")
    assert lock_id("channel:web", "k1") != lock_id("channel:web", "k2")


def test_lock_id_keeps_principal_and_key_apart() -> None:
    assert lock_id("ab", "c") != lock_id("a", "bc")


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=20), st.text(max_size=40))
def test_property_lock_ids_fit_postgres_bigint_and_repeat(principal: str, key: str) -> None:
    value = lock_id(principal, key)
    assert -(2**63) <= value <= 2**63 - 1
    assert lock_id(principal, key) == value


def test_lock_ids_use_the_whole_signed_range() -> None:
    values = [lock_id("p", str(i)) for i in range(200)]
    assert any(v < 0 for v in values) and any(v > 0 for v in values)
    assert len(set(values)) == 200


# --- geo -------------------------------------------------------------------------------------

BERLIN = Coordinates(52.5200, 13.4050)
PARIS = Coordinates(48.8566, 2.3522)
LONDON = Coordinates(51.5074, -0.1278)
NEW_YORK = Coordinates(40.7128, -74.0060)


def test_berlin_to_paris_is_about_878_km() -> None:
    assert distance_km(BERLIN, PARIS) == pytest.approx(878, abs=3)


def test_london_to_new_york_is_about_5570_km() -> None:
    assert distance_km(LONDON, NEW_YORK) == pytest.approx(5570, abs=10)


def test_one_degree_of_longitude_on_the_equator_is_about_111_km() -> None:
    assert distance_km(Coordinates(0, 0), Coordinates(0, 1)) == pytest.approx(111.195, abs=0.01)


def test_distance_to_itself_is_zero() -> None:
    assert distance_km(BERLIN, BERLIN) == 0


def test_distance_is_symmetric() -> None:
    assert distance_km(BERLIN, NEW_YORK) == pytest.approx(distance_km(NEW_YORK, BERLIN))


def test_antipodes_are_half_the_circumference_apart() -> None:
    assert distance_km(Coordinates(0, 0), Coordinates(0, 180)) == pytest.approx(math.pi * EARTH_RADIUS_KM)
    assert distance_km(Coordinates(90, 0), Coordinates(-90, 0)) == pytest.approx(math.pi * EARTH_RADIUS_KM)


def test_distance_crosses_the_date_line_the_short_way() -> None:
    assert distance_km(Coordinates(0, 179.5), Coordinates(0, -179.5)) == pytest.approx(111.195, abs=0.01)


coordinates = st.builds(
    Coordinates,
    st.floats(min_value=-90, max_value=90, allow_nan=False),
    st.floats(min_value=-180, max_value=180, allow_nan=False),
)


@settings(max_examples=150, deadline=None)
@given(coordinates, coordinates, coordinates)
def test_property_distance_is_a_metric_on_the_sphere(a: Coordinates, b: Coordinates, c: Coordinates) -> None:
    ab = distance_km(a, b)
    assert 0 <= ab <= math.pi * EARTH_RADIUS_KM + 1e-6
    assert ab == pytest.approx(distance_km(b, a), abs=1e-6)
    assert distance_km(a, c) <= ab + distance_km(b, c) + 1e-6


@pytest.mark.parametrize(
    "text, expected",
    [
        ("52.52,13.40", Coordinates(52.52, 13.40)),
        (" 52.52 , 13.40 ", Coordinates(52.52, 13.40)),
        ("-33.8688,151.2093", Coordinates(-33.8688, 151.2093)),
        ("90,180", Coordinates(90, 180)),
        ("-90,-180", Coordinates(-90, -180)),
        ("0,0", Coordinates(0, 0)),
    ],
)
def test_coordinates_parse_lat_comma_lon(text: str, expected: Coordinates) -> None:
    assert Coordinates.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "52.52",
        "52.52;13.40",
        "52.52,13.40,7",
        "north,east",
        "52.52,",
        ",13.40",
        "90.1,0",
        "-90.1,0",
        "0,180.5",
        "0,-181",
        "nan,0",
        "0,nan",
        "inf,0",
        "0,-inf",
    ],
)
def test_coordinates_parse_refuses_anything_else_with_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        Coordinates.parse(text)


def test_coordinates_out_of_range_say_what_the_range_is() -> None:
    with pytest.raises(ValueError, match="±90"):
        Coordinates.parse("95,10")
