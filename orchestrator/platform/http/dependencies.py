"""What every controller may receive by injection: the database, the clock, settings, the actor
(capabilities add their own, e.g. ``fulfillment/dependencies.py``).

Handlers declare each one explicitly with the aliases below (``db: DB``, ``actor: ActorDep``, ...);
the parameter's name picks the provider from ``DEPENDENCIES``.
"""

from __future__ import annotations

from typing import TypeAlias

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from orchestrator.platform.actors import Actor
from orchestrator.platform.clock import Clock
from orchestrator.platform.db import Database
from orchestrator.platform.errors import InvalidRequest
from orchestrator.settings import Settings


def _db(state: State) -> Database:
    return state.db


def _clock(state: State) -> Clock:
    return state.clock


def _settings(state: State) -> Settings:
    return state.settings


def _actor(request: Request) -> Actor:
    return request.user


DEPENDENCIES = {
    "db": Provide(_db, sync_to_thread=False),
    "clock": Provide(_clock, sync_to_thread=False),
    "settings": Provide(_settings, sync_to_thread=False),
    "actor": Provide(_actor, sync_to_thread=False),
}

# Name-based injection markers; the handler parameter must carry the matching DEPENDENCIES key.
DB: TypeAlias = NamedDependency[Database]
ClockDep: TypeAlias = NamedDependency[Clock]
SettingsDep: TypeAlias = NamedDependency[Settings]
ActorDep: TypeAlias = NamedDependency[Actor]


def parse_if_match(value: str | None) -> int | None:
    """``If-Match: "3"`` (or ``W/"3"`` or ``3``) → 3."""
    if value is None:
        return None
    cleaned = value.strip().removeprefix("W/").strip('"')
    if not (cleaned.isascii() and cleaned.isdigit()):  # "²" is a digit to isdigit(), not to int()
        raise InvalidRequest("If-Match must carry a version the API returned as ETag", field="If-Match")
    return int(cleaned)


def etag(version: int) -> str:
    return f'"{version}"'
