"""One customer across channels: orders attach to whoever owns the normalised email or phone."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.customers import sql
from orchestrator.customers.model import CustomerDetails, CustomerRecord
from orchestrator.platform.db import fetch


async def find_customer(session: AsyncSession, identity: CustomerDetails) -> CustomerRecord | None:
    """The customer ``identity`` matches (see ``customers/sql.py`` for the rule), if any."""
    rows = await fetch(session, sql.FIND, identity.email, identity.phone)
    return CustomerRecord(*rows[0]) if rows else None
