"""The event catalogue: every type has a schema that admits exactly its keys, the private ones
are known to the outbox, and docs/events.md is the catalogue as written."""

import uuid

import pytest

from orchestrator.platform import events_doc
from orchestrator.platform.events import (
    CATALOGUE,
    PRIVATE_FIELDS,
    EventMismatch,
    EventType,
    check_event,
    check_outbox_payload,
)

FO = {"fulfillment_id": str(uuid.uuid4()), "location": "S1", "method": "pickup"}
READY = {**FO, "pickup_deadline": "2026-12-04T18:00:00+00:00"}


def test_every_event_type_has_a_schema():
    assert set(CATALOGUE) == set(EventType)


def test_docs_events_md_is_the_catalogue_as_written():
    assert events_doc.PATH.read_text() == events_doc.render(), "run python -m orchestrator.platform.events_doc"
    assert events_doc.main(["--check"]) == 0


def test_only_the_pickup_code_is_private_and_the_outbox_scrubs_it():
    assert PRIVATE_FIELDS == ("pickup_code",)
    assert CATALOGUE[EventType.FULFILLMENT_READY_FOR_PICKUP].private_fields == ("pickup_code",)


def test_data_with_exactly_its_keys_and_types_matches():
    check_event("fulfillment.ready_for_pickup", READY, {"pickup_code": "123456"})
    check_event("order.status_changed", {"from": "received", "to": "in_progress"})
    check_event("fulfillment.pickup_code_rejected", {**FO, "locked_until": None})


@pytest.mark.parametrize(
    ("type_", "data", "private"),
    [
        ("fulfillment.accepted", {**FO, "extra": 1}, None),  # a key it does not have
        ("fulfillment.accepted", {"location": "S1", "method": "pickup"}, None),  # a key missing
        ("fulfillment.accepted", {**FO, "fulfillment_id": "not-a-uuid"}, None),
        ("fulfillment.ready_for_pickup", {**READY, "pickup_code": "123456"}, None),  # private on the timeline
        ("fulfillment.ready_for_pickup", READY, {}),  # its code missing from the outbox
        ("fulfillment.accepted", FO, {"pickup_code": "123456"}),  # private data it has none of
        ("fulfillment.picked", {**FO, "picked": [{"sku": "A", "qty": 1}], "short": []}, None),
        ("order.status_changed", {"from_": "received", "to": "in_progress"}, None),
        ("order.cancelled", {"reason": None}, None),
        ("order.shipped", {}, None),  # no such type
    ],
)
def test_data_off_its_schema_is_a_mismatch(type_, data, private):
    with pytest.raises(EventMismatch):
        check_event(type_, data, private)


def _payload(data: dict) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "type": "fulfillment.ready_for_pickup",
        "order_id": str(uuid.uuid4()),
        "order_number": "A-1",
        "channel": "web",
        "seq": 3,
        "order_version": 4,
        "actor": "staff:1",
        "occurred_at": "2026-12-01T12:00:00+00:00",
        "data": data,
    }


def test_an_outbox_message_holds_the_code_until_published_and_never_after():
    check_outbox_payload(_payload({**READY, "pickup_code": "123456"}), published=False)
    check_outbox_payload(_payload(READY), published=True)
    for data, published in (({**READY, "pickup_code": "123456"}, True), (READY, False)):
        with pytest.raises(EventMismatch):
            check_outbox_payload(_payload(data), published=published)
    with pytest.raises(EventMismatch):
        check_outbox_payload({**_payload(READY), "seq": "3"}, published=True)
