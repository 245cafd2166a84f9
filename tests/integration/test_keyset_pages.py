"""The keyset paginator against PostgreSQL: walking the pages reads every row once, in the order
the keys define, with ties, NULLs that sort last and keys in both directions."""

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, Text, Uuid, case, insert, select, text

from orchestrator.platform.db import Database
from orchestrator.platform.pagination import Key, Keyset

ROWS = Table(
    "keyset_rows",
    MetaData(),
    Column("id", Uuid, primary_key=True),
    Column("urgent", Integer, nullable=False),
    Column("due", DateTime(timezone=True)),
    Column("code", Text, nullable=False),
)
URGENCY = case((ROWS.c.urgent > 0, 0), else_=1)


def _rows(n: int) -> list[dict]:
    rng = random.Random(8)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        {
            "id": uuid.uuid4(),
            "urgent": rng.choice([0, 1, 2]),
            "due": rng.choice([None, start, start + timedelta(hours=rng.randint(1, 3))]),  # many ties
            "code": rng.choice(["A", "B|C", "é"]),
        }
        for _ in range(n)
    ]


def _expected_mixed(rows: list[dict]) -> list[uuid.UUID]:
    far = datetime.max.replace(tzinfo=UTC)
    by_code_desc = sorted(rows, key=lambda r: r["id"])
    by_code_desc.sort(key=lambda r: r["code"], reverse=True)
    return [r["id"] for r in sorted(by_code_desc, key=lambda r: (0 if r["urgent"] else 1, r["due"] or far))]


@pytest.mark.parametrize("limit", [1, 4, 7, 200])
async def test_walking_the_pages_reads_every_row_once_in_key_order(db: Database, limit: int):
    rows = _rows(60)
    mixed = Keyset(
        Key(URGENCY, int),
        Key(ROWS.c.due, datetime, nulls_last=True),
        Key(ROWS.c.code, str, descending=True),
        Key(ROWS.c.id, uuid.UUID),
    )
    newest = Keyset(Key(ROWS.c.due, datetime, nulls_last=True), Key(ROWS.c.id, uuid.UUID))
    uniform = Keyset(Key(ROWS.c.code, str, descending=True), Key(ROWS.c.id, uuid.UUID, descending=True))
    async with db.unit_of_work() as uow:
        await uow.session.execute(
            text(
                "CREATE TEMP TABLE keyset_rows"
                " (id uuid PRIMARY KEY, urgent int NOT NULL, due timestamptz, code text NOT NULL)"
            )
        )
        await uow.session.execute(insert(ROWS), rows)
        far = datetime.max.replace(tzinfo=UTC)
        for keyset, expected in (
            (mixed, _expected_mixed(rows)),
            (newest, [r["id"] for r in sorted(rows, key=lambda r: (r["due"] or far, r["id"]))]),
            (uniform, [r["id"] for r in sorted(rows, key=lambda r: (r["code"], r["id"]), reverse=True)]),
        ):
            seen, cursor = [], None
            while True:
                query = keyset.query(select(ROWS.c.id), cursor, limit)
                page = keyset.page((await uow.session.execute(query)).all(), limit)
                assert len(page.items) <= limit
                seen += page.items
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert seen == expected
