"""``place_order`` checks its command itself, so every caller (HTTP, a connector) gets the checks."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from orchestrator.customers.model import CustomerDetails
from orchestrator.order_record.states import Method
from orchestrator.orders.commands import NewLine, PlaceOrder
from orchestrator.orders.intake import place_order
from orchestrator.platform.actors import Actor, Role
from orchestrator.platform.errors import InvalidRequest
from orchestrator.platform.money import MAX_AMOUNT, MAX_SUBTOTAL

CONNECTOR = Actor(kind=Role.CHANNEL, id="connector", channel="marketplace")


class NoDatabase:
    """A command that fails its checks must not reach the database (the unit of work's session)."""

    @property
    def session(self):  # pragma: no cover - reaching it is the failure
        raise AssertionError("the database was reached")


class FixedClock:
    def now(self) -> datetime:
        return datetime(2026, 12, 1, tzinfo=UTC)


def command(lines: tuple[NewLine, ...]) -> PlaceOrder:
    return PlaceOrder(
        channel="marketplace",
        channel_order_ref="M-1",
        customer=CustomerDetails(email="ann@example.com"),
        lines=lines,
        currency="USD",
        method=Method.PICKUP,
        location="S1",
    )


async def test_a_subtotal_beyond_an_amount_column_is_refused_by_the_use_case_itself() -> None:
    lines = tuple(NewLine(f"SKU-{i}", 100_000, MAX_AMOUNT) for i in range(200))
    with pytest.raises(InvalidRequest) as raised:
        await place_order(NoDatabase(), command(lines), CONNECTOR, FixedClock(), claim=None)  # type: ignore[arg-type]
    assert raised.value.field == "lines"
    assert "subtotal" in raised.value.detail


async def test_an_order_without_lines_is_refused_before_the_database() -> None:
    with pytest.raises(InvalidRequest) as raised:
        await place_order(NoDatabase(), command(()), CONNECTOR, FixedClock(), claim=None)  # type: ignore[arg-type]
    assert raised.value.field == "lines"


async def test_a_discount_above_goods_shipping_and_tax_is_refused_by_the_use_case_itself() -> None:
    cmd = replace(command((NewLine("SKU-1", 2, 500),)), shipping_total=300, tax_total=200, discount_total=1501)
    with pytest.raises(InvalidRequest) as raised:
        await place_order(NoDatabase(), cmd, CONNECTOR, FixedClock(), claim=None)  # type: ignore[arg-type]
    assert raised.value.field == "discount_total"


async def test_totals_beyond_an_amount_column_are_refused_by_the_use_case_itself() -> None:
    cmd = replace(command((NewLine("SKU-1", 1, MAX_SUBTOTAL - 10),)), shipping_total=6, tax_total=5)
    with pytest.raises(InvalidRequest) as raised:
        await place_order(NoDatabase(), cmd, CONNECTOR, FixedClock(), claim=None)  # type: ignore[arg-type]
    assert raised.value.field == "lines"
    assert "total" in raised.value.detail
