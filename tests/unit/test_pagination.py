"""The keyset paginator's cursor: opaque, round-trips its keys, and refuses what it did not write."""

import base64
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import column

from orchestrator.platform.errors import InvalidRequest
from orchestrator.platform.pagination import Key, Keyset

KEYS = Keyset(
    Key(column("rank"), int),
    Key(column("due"), datetime, nulls_last=True),
    Key(column("code"), str),
    Key(column("id"), uuid.UUID),
)


ANY_ID = uuid.UUID("7d0c8f52-1a4e-4c55-9f0b-3f1c2b8e6a10")


def _raw(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_a_cursor_round_trips_every_key_type_including_a_missing_nullable_value():
    ident = uuid.uuid4()
    for values in (
        (0, datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), "A|B%C é", ident),
        (-(2**63), None, "", ident),
    ):
        cursor = KEYS.encode(values)
        assert "|" not in cursor and "=" not in cursor
        assert KEYS.decode(cursor) == values


def test_the_orders_cursor_keeps_the_format_it_had():
    orders = Keyset(Key(column("created_at"), datetime, descending=True), Key(column("id"), uuid.UUID, descending=True))
    at, ident = datetime(2026, 5, 1, 12, tzinfo=UTC), uuid.uuid4()
    assert orders.encode((at, ident)) == _raw(f"{at.isoformat()}|{ident}")


@pytest.mark.parametrize(
    "cursor",
    [
        "%%%garbage",
        "9999999999999999999999",
        _raw("x|y|z"),
        _raw("1|2026-01-01T00:00:00+00:00|A"),  # a key short
        _raw(f"1|2026-01-01T00:00:00+00:00|A|{ANY_ID}|extra"),
        _raw(f"{2**63}||A|{ANY_ID}"),  # beyond a bigint
        _raw(f"1|0001-01-01T00:00:00+14:00|A|{ANY_ID}"),  # before the first timestamp
        _raw(f"1|9999-12-31T23:59:59-14:00|A|{ANY_ID}"),
        _raw("1||A|not-a-uuid"),
        _raw(f"1||%ZZ%FF|{ANY_ID}"),  # not UTF-8 once unquoted
        "\xff",
    ],
)
def test_a_cursor_this_api_did_not_write_is_an_invalid_request_on_the_cursor_field(cursor):
    with pytest.raises(InvalidRequest) as caught:
        KEYS.decode(cursor)
    assert caught.value.field == "cursor"
