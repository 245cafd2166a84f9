"""Order intake's writes, hand-written: intake is the hot path, and as ORM inserts the nine
tables an order touches would cost nine round trips and most of the CPU of a request.

Statements take asyncpg's native ``$n`` parameters through ``db.engine.fetch`` (prepared and
cached per connection). Rows travel as JSON arrays and become table rows with
``jsonb_populate_recordset(NULL::<table>, ...)``: the dicts carry every column of their table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from orchestrator.inventory.stock_sql import StockChange

_json = msgspec.json.Encoder()

# Everything intake reads before it plans, in one round trip: the idempotency key (held for the
# transaction; a stored answer), an existing order for the channel reference, the products, the
# pickup store, the channel's sourcing profile — and the customer, found by email (preferred) or
# phone or else created, a missing phone or name filled in on the way. Two first orders of one
# person race on the unique indexes: the loser gets no customer row and asks again (CUSTOMER).
INTAKE = """
WITH found AS (
    SELECT id FROM customers
    WHERE email = $9 OR phone = $10
    ORDER BY (email IS NOT DISTINCT FROM $9) DESC, created_at
    LIMIT 1
), filled AS (
    UPDATE customers c SET phone = coalesce(c.phone, $10), name = coalesce(c.name, $12)
    FROM found
    WHERE c.id = found.id
      AND ((c.phone IS NULL AND $10::text IS NOT NULL) OR (c.name IS NULL AND $12::text IS NOT NULL))
      AND NOT EXISTS (SELECT 1 FROM customers o WHERE o.phone = $10 AND o.id <> found.id)
    RETURNING c.id, c.email, c.phone, c.name
), created AS (
    INSERT INTO customers (id, email, phone, name, created_at)
    SELECT $11, $9, $10, $12, $13 WHERE NOT EXISTS (SELECT 1 FROM found)
    ON CONFLICT DO NOTHING
    RETURNING id, email, phone, name
), customer AS (
    SELECT id, email, phone, name FROM filled
    UNION ALL
    SELECT c.id, c.email, c.phone, c.name FROM customers c JOIN found ON c.id = found.id
     WHERE NOT EXISTS (SELECT 1 FROM filled)
    UNION ALL
    SELECT id, email, phone, name FROM created
)
SELECT
  CASE WHEN $2::text IS NULL THEN true ELSE pg_try_advisory_xact_lock($1) END,
  (SELECT row(fingerprint, status_code, response_body) FROM idempotency_keys
   WHERE principal = $2 AND key = $3),
  (SELECT id FROM orders WHERE channel = $4 AND channel_order_ref = $5),
  (SELECT coalesce(jsonb_object_agg(sku, id), '{}') FROM products WHERE sku = ANY($6::text[]) AND active),
  (SELECT to_jsonb(l) FROM (SELECT id, code, lat, lon, capabilities, daily_capacity, active, pickup_hold_days
                            FROM locations WHERE code = $7) l),
  (SELECT to_jsonb(p) FROM (SELECT version, pickup_policy, min_split_line_value, suggestion_limit
                            FROM sourcing_profiles WHERE channel = $8 ORDER BY version DESC LIMIT 1) p),
  (SELECT row(id, email, phone, name) FROM customer LIMIT 1)
"""

CUSTOMER = """
SELECT id, email, phone, name FROM customers
WHERE email = $1 OR phone = $2
ORDER BY (email IS NOT DISTINCT FROM $1) DESC, created_at
LIMIT 1
"""

WRITE_ORDER = """
WITH levels AS (
    UPDATE stock_levels s
    SET reserved = s.reserved + d.q, updated_at = $10
    FROM unnest($11::int[], $12::int[], $13::int[]) AS d(l, p, q)
    WHERE s.location_id = d.l AND s.product_id = d.p
    RETURNING 1
), ledger AS (
    INSERT INTO inventory_movements (location_id, product_id, kind, on_hand_delta, reserved_delta, reason, actor,
                                     reference, created_at)
    SELECT m.location_id, m.product_id, m.kind, m.on_hand_delta, m.reserved_delta, m.reason, $14, m.reference, $10
    FROM jsonb_to_recordset($15::jsonb) AS m(location_id int, product_id int, kind text, on_hand_delta int,
                                             reserved_delta int, reason text, reference text)
    RETURNING 1
), o AS (
    INSERT INTO orders SELECT * FROM jsonb_populate_recordset(NULL::orders, $1::jsonb) RETURNING 1
), l AS (
    INSERT INTO order_lines SELECT * FROM jsonb_populate_recordset(NULL::order_lines, $2::jsonb) RETURNING 1
), d AS (
    INSERT INTO sourcing_decisions
    SELECT * FROM jsonb_populate_recordset(NULL::sourcing_decisions, $3::jsonb) RETURNING 1
), f AS (
    INSERT INTO fulfillment_orders
    SELECT * FROM jsonb_populate_recordset(NULL::fulfillment_orders, $4::jsonb) RETURNING 1
), fl AS (
    INSERT INTO fulfillment_order_lines
    SELECT * FROM jsonb_populate_recordset(NULL::fulfillment_order_lines, $5::jsonb) RETURNING 1
), r AS (
    INSERT INTO reservations SELECT * FROM jsonb_populate_recordset(NULL::reservations, $6::jsonb) RETURNING 1
), e AS (
    INSERT INTO order_events SELECT * FROM jsonb_populate_recordset(NULL::order_events, $7::jsonb) RETURNING 1
), x AS (
    INSERT INTO outbox (event_id, type, order_id, payload, created_at, attempts)
    SELECT event_id, type, order_id, payload, created_at, attempts
    FROM jsonb_populate_recordset(NULL::outbox, $8::jsonb)
    RETURNING 1
), i AS (
    INSERT INTO idempotency_keys (principal, key, fingerprint, status_code, response_body, created_at)
    SELECT ($9::jsonb)->>'principal', ($9::jsonb)->>'key', ($9::jsonb)->>'fingerprint',
           (($9::jsonb)->>'status_code')::int, $16, $10
    WHERE $9::jsonb IS NOT NULL
    RETURNING 1
)
SELECT (SELECT count(*) FROM levels), (SELECT count(*) FROM o)
"""


def encode(rows: Any) -> str:
    return _json.encode(rows).decode()


def reservation_totals(changes: Sequence[StockChange]) -> tuple[list[int], list[int], list[int]]:
    totals: dict[tuple[int, int], int] = {}
    for c in changes:
        totals[(c.location_id, c.product_id)] = totals.get((c.location_id, c.product_id), 0) + c.reserved_delta
    keys = sorted(totals)
    return [k[0] for k in keys], [k[1] for k in keys], [totals[k] for k in keys]


def movements_json(changes: Sequence[StockChange]) -> str:
    return encode(
        [
            {
                "location_id": c.location_id,
                "product_id": c.product_id,
                "kind": c.kind.value,
                "on_hand_delta": c.on_hand_delta,
                "reserved_delta": c.reserved_delta,
                "reason": c.reason,
                "reference": c.reference,
            }
            for c in changes
        ]
    )
