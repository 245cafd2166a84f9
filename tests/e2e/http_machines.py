"""What the hypothesis state machines over HTTP share: one event loop, database and Redis for the
whole run (class attributes ``run_machine`` sets), a manual clock and an exit stack per example,
a clean database and a served app at each example's start, and the settings they all run with:
no shrink phase (each example rebuilds its world through the API; a failing sequence is printed
as found)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any, ClassVar

from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test
from redis.asyncio import Redis
from sqlalchemy import text

from orchestrator.app import create_app
from orchestrator.platform.clock import ManualClock
from orchestrator.platform.db import Database
from orchestrator.settings import Settings
from tests.conftest import TABLES
from tests.e2e.conftest import Shop, serving


class HttpMachine(RuleBasedStateMachine):
    loop: ClassVar[asyncio.AbstractEventLoop]
    db: ClassVar[Database]
    redis: ClassVar[Redis]
    database_url: ClassVar[str]
    redis_url: ClassVar[str]

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(datetime.now(UTC))
        self.stack = AsyncExitStack()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(coro)

    async def serve(self, config: Settings) -> Shop:
        """An empty database and the app on it, for this example."""
        async with self.db.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        app = create_app(config, db=self.db, redis=self.redis, clock=self.clock)
        client = await self.stack.enter_async_context(serving(app))
        return Shop(client, self.db, self.clock)

    def teardown(self) -> None:
        self.run(self.stack.aclose())


def run_machine(
    machine: type[HttpMachine], database_url: str, redis_url: str, *, examples: int, steps: int, **shared: Any
) -> None:
    """Run ``machine`` as a test; ``shared``: more class attributes (a Stripe server, say)."""
    loop = asyncio.new_event_loop()
    db = Database(database_url, pool_size=8, max_overflow=4)
    redis = Redis.from_url(redis_url)
    machine.loop, machine.db, machine.redis = loop, db, redis
    machine.database_url, machine.redis_url = database_url, redis_url
    for name, value in shared.items():
        setattr(machine, name, value)
    try:
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=examples,
                stateful_step_count=steps,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                print_blob=True,
                suppress_health_check=[
                    HealthCheck.function_scoped_fixture,
                    HealthCheck.too_slow,
                    HealthCheck.data_too_large,
                ],
            ),
        )
    finally:
        loop.run_until_complete(redis.aclose())
        loop.run_until_complete(db.dispose())
        loop.close()
