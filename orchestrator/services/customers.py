"""One customer across channels: orders attach to whoever owns the normalised email or phone."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.domain.customer import normalise_email, normalise_phone
from orchestrator.domain.errors import InvalidRequest
from orchestrator.services.commands import CustomerDetails


def normalise_details(details: CustomerDetails, phone_region: str) -> CustomerDetails:
    email = normalise_email(details.email) if details.email else None
    phone = normalise_phone(details.phone, phone_region) if details.phone else None
    if email is None and phone is None:
        raise InvalidRequest("a customer needs an email or a phone", field="customer")
    name = details.name.strip() if details.name else None
    return CustomerDetails(email=email, phone=phone, name=name or None)


_FIND = text(
    """
    SELECT id FROM customers
    WHERE email = :email OR phone = :phone
    ORDER BY (email IS NOT DISTINCT FROM :email) DESC, created_at
    LIMIT 1
    """
)
_CREATE = text(
    """
    INSERT INTO customers (id, email, phone, name, created_at)
    VALUES (:id, :email, :phone, :name, now())
    ON CONFLICT DO NOTHING
    RETURNING id
    """
)
_FILL = text(
    """
    UPDATE customers SET
        phone = COALESCE(phone, CAST(:phone AS text)),
        name = COALESCE(name, CAST(:name AS text))
    WHERE id = :id
      AND ((phone IS NULL AND CAST(:phone AS text) IS NOT NULL)
           OR (name IS NULL AND CAST(:name AS text) IS NOT NULL))
      AND NOT EXISTS (SELECT 1 FROM customers o WHERE o.phone = CAST(:phone AS text) AND o.id <> :id)
    """
)


async def resolve_customer(session: AsyncSession, details: CustomerDetails) -> uuid.UUID:
    """The matching customer (email first, then phone), or a new one. Two concurrent first orders
    of one person race on the unique indexes; the loser finds the winner's row."""
    params = {"email": details.email, "phone": details.phone}
    for _ in range(3):
        found = await session.scalar(_FIND, params)
        if found is not None:
            await session.execute(_FILL, {"id": found, "phone": details.phone, "name": details.name})
            return found
        created = await session.scalar(
            _CREATE, {"id": uuid.uuid4(), **params, "name": details.name}
        )
        if created is not None:
            return created
    raise AssertionError("customer neither found nor created")  # pragma: no cover
