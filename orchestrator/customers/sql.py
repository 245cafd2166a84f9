"""Finding a customer by identity, hand-written for intake's hot path.

The matching rule, in one place: the customer who owns the normalised email, else the one who
owns the phone (the oldest if both match different people); a first order creates the customer.
A returning customer's missing phone or name is filled in from the order, unless another customer
already owns that phone.
"""

from __future__ import annotations


def find_or_create(*, email: str, phone: str, name: str, new_id: str, now: str) -> str:
    """CTEs ending in ``customer(id, email, phone, name)``: the customer found (filled in) or
    created. The arguments are the statement's parameter placeholders. Two first orders of one
    person race on the unique indexes: the loser's ``customer`` is empty and it asks again with
    ``FIND`` once the winner committed."""
    return f"""
found AS (
    SELECT id FROM customers
    WHERE email = {email} OR phone = {phone}
    ORDER BY (email IS NOT DISTINCT FROM {email}) DESC, created_at
    LIMIT 1
), filled AS (
    UPDATE customers c SET phone = coalesce(c.phone, {phone}), name = coalesce(c.name, {name})
    FROM found
    WHERE c.id = found.id
      AND ((c.phone IS NULL AND {phone}::text IS NOT NULL) OR (c.name IS NULL AND {name}::text IS NOT NULL))
      AND NOT EXISTS (SELECT 1 FROM customers o WHERE o.phone = {phone} AND o.id <> found.id)
    RETURNING c.id, c.email, c.phone, c.name
), created AS (
    INSERT INTO customers (id, email, phone, name, created_at)
    SELECT {new_id}, {email}, {phone}, {name}, {now} WHERE NOT EXISTS (SELECT 1 FROM found)
    ON CONFLICT DO NOTHING
    RETURNING id, email, phone, name
), customer AS (
    SELECT id, email, phone, name FROM filled
    UNION ALL
    SELECT c.id, c.email, c.phone, c.name FROM customers c JOIN found ON c.id = found.id
     WHERE NOT EXISTS (SELECT 1 FROM filled)
    UNION ALL
    SELECT id, email, phone, name FROM created
)"""


# The same choice as ``found``, read only: the customer a concurrent first order created.
FIND = """
SELECT id, email, phone, name FROM customers
WHERE email = $1 OR phone = $2
ORDER BY (email IS NOT DISTINCT FROM $1) DESC, created_at
LIMIT 1
"""
