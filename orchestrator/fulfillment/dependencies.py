"""What the lifecycle's controllers receive by injection: the pickup-code secret and guard,
built once by the app factory from settings (``LifecycleSettings.from_settings``)."""

from __future__ import annotations

from typing import TypeAlias

from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from orchestrator.fulfillment.service import LifecycleSettings


def _lifecycle(state: State) -> LifecycleSettings:
    return state.lifecycle


LIFECYCLE_DEPENDENCIES = {"lifecycle": Provide(_lifecycle, sync_to_thread=False)}
LifecycleDep: TypeAlias = NamedDependency[LifecycleSettings]
