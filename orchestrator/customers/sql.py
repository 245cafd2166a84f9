"""Finding a customer by identity, hand-written for intake's hot path.

The resolution rule, in one place: the customer who owns the order's email, else the one who owns
its phone, else its loyalty id, else its account (the oldest customer if one identity somehow has
two: a primary email or phone written before identities existed); none: the order creates the
customer. The order's identities nobody owns are attached to that customer, and its missing
primary email, phone or name filled in (an email or phone another customer owns is left to them).
Identities owned by *other* customers are returned (``others``): the order shows them to be one
person, which intake records as a merge suggestion (``record_suggestions``) or merges at once.
"""

from __future__ import annotations

# The unique indexes two first orders of one person race on (``find_or_create``): the loser starts
# again and finds the winner's customer.
RACED = frozenset({"uq_customers_email", "uq_customers_phone", "customer_identities_pkey"})


def find_or_create(*, email: str, phone: str, loyalty_id: str, account: str, name: str, new_id: str, now: str) -> str:
    """CTEs ending in ``customer(id, email, phone, name)`` (the customer found, filled in, or
    created) and ``owners(kind, value, rank, customer_id, created_at)`` (who owned each of the
    order's identities before it). The arguments are the statement's parameter placeholders, one
    per identity kind (NULL: the order has none of that kind). Two first orders of one
    person race on the unique indexes: the loser's ``customer`` is empty (or its identity insert
    fails) and intake starts again, finding the winner's customer once it committed."""
    return f"""
given AS (
    -- Four fixed rows rather than an unnest of arrays: the row count is then known to the plan the
    -- prepared statement keeps (its generic plan); with an unnest, PostgreSQL re-planned the whole
    -- statement on every execution (custom plans, +0.5 ms of database CPU per order).
    SELECT g.kind, g.value, g.rank
    FROM (VALUES ('email', {email}::text, 1), ('phone', {phone}::text, 2), ('loyalty_id', {loyalty_id}::text, 3),
                 ('account', {account}::text, 4)) AS g(kind, value, rank)
    WHERE g.value IS NOT NULL
), owners AS (
    SELECT DISTINCT ON (o.kind, o.value) o.kind, o.value, o.rank, o.customer_id, o.created_at
    FROM (
        SELECT g.kind, g.value, g.rank, c.id AS customer_id, c.created_at, 0 AS source
        FROM given g
        JOIN customer_identities i ON i.kind = g.kind AND i.value = g.value
        JOIN customers c ON c.id = i.customer_id
        UNION ALL
        SELECT 'email', c.email, 1, c.id, c.created_at, 1 FROM customers c WHERE c.email = {email}
        UNION ALL
        SELECT 'phone', c.phone, 2, c.id, c.created_at, 1 FROM customers c WHERE c.phone = {phone}
    ) o
    ORDER BY o.kind, o.value, o.source, o.created_at
), chosen AS (
    SELECT customer_id AS id FROM owners ORDER BY rank, created_at LIMIT 1
), found AS (
    -- Locked (as the order's foreign key will lock it anyway) so that an admin's merge of this
    -- customer waits for the order, and moves it; one that got here first makes the row drop out
    -- (merged_into is re-checked on the merged row), and intake starts again (``customer`` empty).
    SELECT c.id FROM customers c JOIN chosen ON c.id = chosen.id WHERE c.merged_into IS NULL FOR KEY SHARE OF c
), fill AS (
    SELECT found.id,
           CASE WHEN NOT EXISTS (SELECT 1 FROM owners o WHERE o.kind = 'email' AND o.customer_id <> found.id)
                THEN {email}::text END AS email,
           CASE WHEN NOT EXISTS (SELECT 1 FROM owners o WHERE o.kind = 'phone' AND o.customer_id <> found.id)
                THEN {phone}::text END AS phone
    FROM found
), filled AS (
    UPDATE customers c
    SET email = coalesce(c.email, fill.email), phone = coalesce(c.phone, fill.phone), name = coalesce(c.name, {name})
    FROM fill
    WHERE c.id = fill.id
      AND ((c.email IS NULL AND fill.email IS NOT NULL) OR (c.phone IS NULL AND fill.phone IS NOT NULL)
           OR (c.name IS NULL AND {name}::text IS NOT NULL))
    RETURNING c.id, c.email, c.phone, c.name
), created AS (
    INSERT INTO customers (id, email, phone, name, created_at)
    SELECT {new_id}, {email}, {phone}, {name}, {now} WHERE NOT EXISTS (SELECT 1 FROM owners)
    ON CONFLICT DO NOTHING
    RETURNING id, email, phone, name
), customer AS (
    SELECT id, email, phone, name FROM filled
    UNION ALL
    SELECT c.id, c.email, c.phone, c.name FROM customers c JOIN found ON c.id = found.id
     WHERE NOT EXISTS (SELECT 1 FROM filled)
    UNION ALL
    SELECT id, email, phone, name FROM created
), attached AS (
    -- No ON CONFLICT: an identity a concurrent first order just took is a unique violation, and
    -- intake starts again (and finds that order's customer), rather than two customers for one.
    INSERT INTO customer_identities (kind, value, customer_id, created_at)
    SELECT g.kind, g.value, customer.id, {now}
    FROM given g CROSS JOIN customer
    WHERE NOT EXISTS (SELECT 1 FROM owners o WHERE o.kind = g.kind AND o.value = g.value)
    RETURNING 1
)"""


# The other customers the order's identities belonged to: [[customer_id, kind, value], ...] or NULL.
OTHERS = """(SELECT jsonb_agg(jsonb_build_array(o.customer_id, o.kind, o.value) ORDER BY o.rank)
   FROM owners o, customer WHERE o.customer_id <> customer.id)"""


def record_suggestions(*, suggestions: str, order_id: str, now: str) -> str:
    """A CTE body inserting the order's merge suggestions (``model.suggestion_pairs``, as JSON):
    a pair already suggested keeps its first suggestion."""
    return f"""
    INSERT INTO customer_merge_suggestions (id, first_id, second_id, order_id, identities, created_at)
    SELECT gen_random_uuid(), s.first_id, s.second_id, {order_id}, s.identities, {now}
    FROM jsonb_to_recordset({suggestions}::jsonb) AS s(first_id uuid, second_id uuid, identities jsonb)
    ON CONFLICT (first_id, second_id) DO NOTHING
    RETURNING 1"""
