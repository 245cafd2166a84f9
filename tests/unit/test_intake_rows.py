"""Intake's typed rows hold every column of their table, and its statements name every parameter.

``jsonb_populate_recordset`` writes NULL for a key a row leaves out, default or not: a column added
to a table and not to its row would be written NULL by every new order. These tests hold each row
struct to its SQLModel table (``tests/integration/test_intake_rows_db.py`` holds them to the
migrated database)."""

from __future__ import annotations

import msgspec
import pytest

from orchestrator.metadata import metadata
from orchestrator.orders import intake_rows as rows
from orchestrator.orders import intake_sql as sql


def columns_written(table_name: str) -> set[str]:
    """The columns a row must carry: all of them but an identity the database numbers."""
    table = metadata.tables[table_name]
    return {c.name for c in table.columns if c.identity is None}


@pytest.mark.parametrize("row_type", list(rows.ROW_TABLES), ids=lambda t: t.__name__)
def test_every_typed_row_carries_exactly_the_columns_of_its_table(row_type: type[msgspec.Struct]) -> None:
    fields = set(row_type.__struct_fields__)
    columns = columns_written(rows.ROW_TABLES[row_type])
    assert fields == columns, f"{row_type.__name__}: missing {columns - fields}, extra {fields - columns}"


def test_every_table_intake_writes_whole_rows_to_has_a_typed_row() -> None:
    populated = {
        "orders",
        "order_lines",
        "sourcing_decisions",
        "fulfillment_orders",
        "fulfillment_order_lines",
        "reservations",
        "order_events",
        "outbox",
    }
    assert set(rows.ROW_TABLES.values()) == populated
    for table in populated:
        assert f"NULL::{table}," in sql.WRITE_ORDER.text


def test_no_row_field_has_a_default_so_every_column_is_given_a_value() -> None:
    for row_type in rows.ROW_TABLES:
        assert row_type.__struct_defaults__ == (), row_type.__name__


@pytest.mark.parametrize(
    ("defaults", "table"),
    [
        (rows.NEW_FULFILLMENT, "fulfillment_orders"),
        (rows.NEW_RESERVATION, "reservations"),
        (rows.NEW_OUTBOX, "outbox"),
    ],
)
def test_the_defaults_given_explicitly_are_the_tables_own(defaults: dict, table: str) -> None:
    """A column a row builder leaves out gets what the table would have given it."""
    columns = metadata.tables[table].columns
    for name, value in defaults.items():
        column = columns[name]
        default = column.default.arg if column.default is not None else None
        if callable(default):
            default = None  # a factory: only the None ones are left out by the builders
        assert column.server_default is None, name
        assert value == default, name
        assert value is not None or column.nullable, name


def test_a_statement_numbers_its_named_parameters_once_each_and_leaves_casts_alone() -> None:
    statement = sql.Statement("SELECT :a, :b::int, :a::text, '{}'::jsonb, x::date FROM t WHERE y = :c")
    assert statement.text == "SELECT $1, $2::int, $1::text, '{}'::jsonb, x::date FROM t WHERE y = $3"
    assert statement.names == ("a", "b", "c")
    assert statement.args(c=3, a=1, b=2) == [1, 2, 3]


def test_a_statement_refuses_a_missing_or_an_unknown_parameter() -> None:
    statement = sql.Statement("SELECT :a, :b")
    with pytest.raises(KeyError):
        statement.args(a=1, c=2)
    with pytest.raises(TypeError):
        statement.args(a=1, b=2, c=3)


def test_intake_reads_the_channel_once_and_writes_the_order_with_named_parameters() -> None:
    assert sql.INTAKE.names.count("channel") == 1
    assert "$" not in "".join(sql.INTAKE.names)
    assert {"orders", "order_lines", "fulfillments", "body", "idem_principal"} <= set(sql.WRITE_ORDER.names)
