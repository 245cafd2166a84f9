"""Writes ``docs/events.md`` from the event catalogue: ``python -m orchestrator.platform.events_doc``
(``--check`` exits 1 when the file is out of date instead)."""

from __future__ import annotations

import sys
from pathlib import Path

import msgspec
from msgspec import inspect

from orchestrator.platform.events import CATALOGUE, OutboxPayload

PATH = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def _type_name(t: inspect.Type) -> str:
    match t:
        case inspect.StrType():
            return "string"
        case inspect.IntType():
            return "integer"
        case inspect.BoolType():
            return "boolean"
        case inspect.UUIDType():
            return "uuid"
        case inspect.DateTimeType():
            return "date-time"
        case inspect.EnumType():
            return "event type"
        case inspect.NoneType():
            return "null"
        case inspect.DictType() | inspect.AnyType():
            return "object"
        case inspect.ListType():
            return f"list of {_type_name(t.item_type)}"
        case inspect.StructType():
            inner = ", ".join(f"`{f.encode_name}`: {_type_name(f.type)}" for f in t.fields)
            return "{" + inner + "}"
        case inspect.UnionType():
            return " or ".join(_type_name(option) for option in t.types)
    raise TypeError(f"no name for {t!r}")


def _rows(struct: type[msgspec.Struct], private: bool = False) -> list[str]:
    info = inspect.type_info(struct)
    assert isinstance(info, inspect.StructType)
    note = " | outbox only |" if private else " | |"
    return [f"| `{f.encode_name}` | {_type_name(f.type)}{note}" for f in info.fields]


def render() -> str:
    out = [
        "# Events",
        "",
        "<!-- Written by `python -m orchestrator.platform.events_doc` from"
        " orchestrator/platform/events.py; do not edit by hand. -->",
        "",
        "Every change to an order appends events to its timeline (`GET /v1/orders/{id}/events`) and, in the same",
        "transaction, to the outbox, which relays them to the Redis events stream (at least once; deduplicate on",
        "`id`). Every key listed is present (a value may be null where its type says so) and no other key is.",
        "Keys marked *outbox only* are in the stream message for the customer's notification, never on the",
        "timeline, and are removed from the outbox row once it is published.",
        "",
        "## The stream message",
        "",
        "| key | type | |",
        "|---|---|---|",
        *_rows(OutboxPayload),
        "",
        "`data` is the event's data below.",
        "",
        "## Event types",
        "",
    ]
    for type_, spec in CATALOGUE.items():
        out += [f"### `{type_.value}`", "", spec.description, "", "| key | type | |", "|---|---|---|"]
        out += _rows(spec.data)
        if spec.private is not None:
            out += _rows(spec.private, private=True)
        out.append("")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = PATH.read_text() if PATH.exists() else ""
        if current != text:
            print(f"{PATH} is out of date: run python -m orchestrator.platform.events_doc", file=sys.stderr)
            return 1
        return 0
    PATH.parent.mkdir(exist_ok=True)
    PATH.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
