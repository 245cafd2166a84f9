"""The platform's idempotency service on PostgreSQL, as any mutating endpoint would use it:
claim the key in the transaction that does the work, complete it with the answer, and a later
claim replays that answer; a claim while the first transaction still runs is told so at once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator.platform import idempotency
from orchestrator.platform.errors import IdempotencyKeyInFlight, IdempotencyKeyReused
from orchestrator.platform.idempotency import IdempotencyClaim, StoredAnswer

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CLAIM = IdempotencyClaim("key:k-1", "refund-7", "a" * 64)


async def test_a_completed_key_replays_its_first_answer(db) -> None:
    async with db.unit_of_work() as uow:
        assert await idempotency.claim(uow.session, CLAIM) is None
        await idempotency.complete(uow.session, CLAIM, 201, b'{"refund": 7}', NOW)
        await uow.commit()
    async with db.unit_of_work() as uow:
        assert await idempotency.claim(uow.session, CLAIM) == StoredAnswer(CLAIM.fingerprint, 201, b'{"refund": 7}')


async def test_a_completed_key_with_another_body_is_refused(db) -> None:
    async with db.unit_of_work() as uow:
        await idempotency.claim(uow.session, CLAIM)
        await idempotency.complete(uow.session, CLAIM, 201, b"{}", NOW)
        await uow.commit()
    async with db.unit_of_work() as uow:
        with pytest.raises(IdempotencyKeyReused):
            await idempotency.claim(uow.session, IdempotencyClaim(CLAIM.principal, CLAIM.key, "b" * 64))


async def test_a_key_claimed_by_a_running_transaction_is_in_flight_and_free_once_it_ends(db) -> None:
    async with db.unit_of_work() as first:
        assert await idempotency.claim(first.session, CLAIM) is None
        async with db.unit_of_work() as second:
            with pytest.raises(IdempotencyKeyInFlight):
                await idempotency.claim(second.session, CLAIM)
        # The same key in another principal's space is another key.
        async with db.unit_of_work() as other:
            assert await idempotency.claim(other.session, IdempotencyClaim("key:k-2", CLAIM.key, "c" * 64)) is None
    # The first transaction rolled back without completing: the key is free again.
    async with db.unit_of_work() as again:
        assert await idempotency.claim(again.session, CLAIM) is None
