"""Intake's typed rows against the database the migrations build: each carries exactly the
columns of its table (but an identity the database numbers), so ``jsonb_populate_recordset``
never writes NULL into a column a row forgot."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from orchestrator.orders import intake_rows as rows


@pytest.mark.parametrize("row_type", list(rows.ROW_TABLES), ids=lambda t: t.__name__)
async def test_every_typed_row_carries_exactly_the_migrated_tables_columns(db, row_type) -> None:
    table = rows.ROW_TABLES[row_type]
    async with db.unit_of_work() as uow:
        result = await uow.session.execute(
            text(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = :t AND is_identity = 'NO'"
            ),
            {"t": table},
        )
        columns = set(result.scalars())
    assert columns, table
    assert set(row_type.__struct_fields__) == columns
