"""What the connector controllers receive by injection: the flow receipts are processed in,
built from the app's database, clock, lifecycle settings, settings and payment gateway."""

from __future__ import annotations

from typing import TypeAlias

from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from orchestrator.connections.handlers import processing
from orchestrator.connections.receipts import Processing


def _processing(state: State) -> Processing:
    return processing(state.db, state.clock, state.lifecycle, state.settings, state.gateway)


PROCESSING_DEPENDENCIES = {"flow": Provide(_processing, sync_to_thread=False)}
ProcessingDep: TypeAlias = NamedDependency[Processing]
