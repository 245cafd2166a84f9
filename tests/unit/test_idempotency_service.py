"""Idempotency as a platform service (Stripe's semantics): what a claim decides, whose key space
a key lives in, and the one SQL fragment every caller embeds."""

from __future__ import annotations

import uuid

import pytest

from orchestrator.platform import idempotency
from orchestrator.platform.actors import Actor, Role
from orchestrator.platform.errors import IdempotencyKeyInFlight, IdempotencyKeyReused
from orchestrator.platform.idempotency import IdempotencyClaim, StoredAnswer, replay_of

CLAIM = IdempotencyClaim("channel:web", "k-1", "f" * 64)


def test_a_key_never_seen_lets_the_request_go_ahead() -> None:
    assert replay_of(CLAIM, held=True, stored=None) is None


def test_the_same_key_and_body_replays_the_first_answer() -> None:
    first = StoredAnswer(CLAIM.fingerprint, 201, b'{"id": 1}')
    assert replay_of(CLAIM, held=True, stored=first) is first


def test_the_same_key_with_another_body_is_refused_as_reused() -> None:
    other = StoredAnswer("0" * 64, 201, b"{}")
    with pytest.raises(IdempotencyKeyReused) as raised:
        replay_of(CLAIM, held=True, stored=other)
    assert raised.value.field == "Idempotency-Key"


def test_the_same_key_while_its_first_request_runs_is_refused_as_in_flight() -> None:
    with pytest.raises(IdempotencyKeyInFlight):
        replay_of(CLAIM, held=False, stored=None)


def test_a_stored_answer_reads_from_its_row_and_a_missing_one_is_none() -> None:
    assert idempotency.stored_answer(None) is None
    answer = idempotency.stored_answer(("f" * 64, 200, memoryview(b"body")))
    assert answer == StoredAnswer("f" * 64, 200, b"body")


def test_a_channel_keys_space_is_its_channel_and_any_other_keys_is_its_own_id() -> None:
    key_id = str(uuid.uuid4())
    channel = Actor(kind=Role.CHANNEL, id="shop", channel="web", key_id=key_id)
    admin = Actor(kind=Role.ADMIN, id="shop", key_id=key_id)
    assert idempotency.idempotency_scope(channel) == "channel:web"
    assert idempotency.idempotency_scope(admin) == f"key:{key_id}"


def test_the_answer_is_stored_by_one_statement_that_stores_nothing_without_a_key() -> None:
    statement = idempotency.record(principal="$1", key="$2", fingerprint="$3", status_code="$4", body="$5", now="$6")
    assert statement.startswith("INSERT INTO idempotency_keys")
    assert "WHERE $1::text IS NOT NULL" in statement
    columns = idempotency.claim_columns(lock="$1", principal="$2", key="$3")
    assert "pg_try_advisory_xact_lock($1)" in columns
    assert "WHERE principal = $2 AND key = $3" in columns
