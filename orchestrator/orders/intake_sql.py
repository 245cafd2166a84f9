"""Order intake's reads and writes, hand-written: intake is the hot path, and as ORM inserts the
nine tables an order touches would cost nine round trips and most of the CPU of a request.

Rows are typed (``orders/intake_rows.py``: one struct per table, every column), travel as JSON
arrays and become table rows with ``jsonb_populate_recordset(NULL::<table>, ...)``.
Statements name their parameters (``:name``) and run as asyncpg's ``$n`` through
``platform.db.fetch`` (prepared and cached per connection).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from orchestrator.customers import sql as customers_sql
from orchestrator.inventory.stock_sql import StockChange
from orchestrator.orders.intake_rows import NewOrderRows
from orchestrator.platform import idempotency
from orchestrator.platform.idempotency import IdempotencyClaim

_json = msgspec.json.Encoder()
# ``:name``, not the second colon of a ``::type`` cast.
_PARAMETER = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


class Statement:
    """SQL written with ``:name`` parameters, numbered once into asyncpg's ``$n``."""

    def __init__(self, text: str) -> None:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        self.text = _PARAMETER.sub(number, text)
        self.names = tuple(names)

    def args(self, **values: Any) -> list[Any]:
        """The values in ``$n`` order; every parameter named, none extra."""
        if len(values) != len(self.names):
            raise TypeError(f"parameters {sorted(values)} do not match {sorted(self.names)}")
        return [values[name] for name in self.names]


# --- statements ----------------------------------------------------------------------------------

# Everything intake reads before it plans, in one round trip: the idempotency key (held for the
# transaction; a stored answer), an existing order for the channel reference, the products, the
# pickup store, the channel's sourcing profile — and the customer, found or created by identity,
# with the other customers the order's identities belong to (the rule is the customers
# capability's, ``customers/sql.py``).
_CUSTOMER = customers_sql.find_or_create(
    email=":email",
    phone=":phone",
    loyalty_id=":loyalty_id",
    account=":account",
    name=":name",
    new_id=":new_customer_id",
    now=":now",
)
INTAKE = Statement(
    f"""
WITH {_CUSTOMER}
SELECT
  {idempotency.claim_columns(lock=":idem_lock", principal=":idem_principal", key=":idem_key")},
  (SELECT id FROM orders WHERE channel = :channel AND channel_order_ref = :channel_order_ref
   AND holds_channel_ref),
  (SELECT coalesce(jsonb_object_agg(sku, id), '{{}}') FROM products WHERE sku = ANY(:skus::text[]) AND active),
  (SELECT to_jsonb(l) FROM (SELECT id, code, lat, lon, capabilities, daily_capacity, active, pickup_hold_days,
                                   prep_minutes FROM locations WHERE code = :pickup_location) l),
  (SELECT to_jsonb(p) FROM (SELECT version, on_pickup_shortfall, ask_customer_fallback, ask_customer_timeout_hours,
                                   min_split_line_value, suggestion_limit, transfer_hours
                            FROM sourcing_profiles WHERE channel = :channel ORDER BY version DESC LIMIT 1) p),
  (SELECT row(id, email, phone, name) FROM customer LIMIT 1),
  {customers_sql.OTHERS}
"""
)

# The whole order in one statement: reservations and their ledger, the order, its lines, the
# sourcing decision, the fulfillments, the timeline and outbox, the idempotency answer, and the merge
# suggestions the order's identities made.
_IDEMPOTENCY_RECORD = idempotency.record(
    principal=":idem_principal",
    key=":idem_key",
    fingerprint=":idem_fingerprint",
    status_code="201",
    body=":body",
    now=":now",
)
WRITE_ORDER = Statement(
    f"""
WITH levels AS (
    UPDATE stock_levels s
    SET reserved = s.reserved + d.q, updated_at = :now
    FROM unnest(:stock_locations::int[], :stock_products::int[], :stock_quantities::int[]) AS d(l, p, q)
    WHERE s.location_id = d.l AND s.product_id = d.p
    RETURNING 1
), ledger AS (
    INSERT INTO inventory_movements (location_id, product_id, kind, on_hand_delta, reserved_delta, reason, actor,
                                     reference, created_at)
    SELECT m.location_id, m.product_id, m.kind, m.on_hand_delta, m.reserved_delta, m.reason, :actor, m.reference, :now
    FROM jsonb_to_recordset(:movements::jsonb) AS m(location_id int, product_id int, kind text, on_hand_delta int,
                                                    reserved_delta int, reason text, reference text)
    RETURNING 1
), o AS (
    INSERT INTO orders SELECT * FROM jsonb_populate_recordset(NULL::orders, :orders::jsonb) RETURNING 1
), l AS (
    INSERT INTO order_lines SELECT * FROM jsonb_populate_recordset(NULL::order_lines, :order_lines::jsonb) RETURNING 1
), d AS (
    INSERT INTO sourcing_decisions
    SELECT * FROM jsonb_populate_recordset(NULL::sourcing_decisions, :decisions::jsonb) RETURNING 1
), f AS (
    INSERT INTO fulfillment_orders
    SELECT * FROM jsonb_populate_recordset(NULL::fulfillment_orders, :fulfillments::jsonb) RETURNING 1
), fl AS (
    INSERT INTO fulfillment_order_lines
    SELECT * FROM jsonb_populate_recordset(NULL::fulfillment_order_lines, :fulfillment_lines::jsonb) RETURNING 1
), r AS (
    INSERT INTO reservations SELECT * FROM jsonb_populate_recordset(NULL::reservations, :reservations::jsonb)
    RETURNING 1
), e AS (
    INSERT INTO order_events SELECT * FROM jsonb_populate_recordset(NULL::order_events, :events::jsonb) RETURNING 1
), x AS (
    INSERT INTO outbox (event_id, type, order_id, payload, created_at, claimed_until, attempts, published_at)
    SELECT event_id, type, order_id, payload, created_at, claimed_until, attempts, published_at
    FROM jsonb_populate_recordset(NULL::outbox, :outbox::jsonb)
    RETURNING 1
), i AS (
    {_IDEMPOTENCY_RECORD}
), ms AS (
    {customers_sql.record_suggestions(suggestions=":merge_suggestions", order_id=":order_id", now=":now")}
)
SELECT (SELECT count(*) FROM levels), (SELECT count(*) FROM o)
"""
)


def write_order_args(
    rows: NewOrderRows,
    changes: Sequence[StockChange],
    claim: IdempotencyClaim | None,
    body: bytes,
    actor: str,
    now: datetime,
    merge_suggestions: Sequence[dict[str, Any]] = (),
) -> list[Any]:
    locations, products, quantities = reservation_totals(changes)
    return WRITE_ORDER.args(
        orders=encode([rows.order]),
        order_lines=encode(rows.lines),
        decisions=encode([rows.decision]),
        fulfillments=encode(rows.fulfillments),
        fulfillment_lines=encode(rows.fulfillment_lines),
        reservations=encode(rows.reservations),
        events=encode(rows.events),
        outbox=encode(rows.outbox),
        idem_principal=claim.principal if claim else None,
        idem_key=claim.key if claim else None,
        idem_fingerprint=claim.fingerprint if claim else None,
        body=body,
        now=now,
        stock_locations=locations,
        stock_products=products,
        stock_quantities=quantities,
        actor=actor,
        movements=movements_json(changes),
        order_id=rows.order.id,
        merge_suggestions=encode(list(merge_suggestions)),
    )


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
