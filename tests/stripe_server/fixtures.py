"""Pytest fixtures: the Stripe-shaped server on 127.0.0.1 (a free port, its own thread and event
loop, one per test session) and a gateway pointed at it. tests/conftest.py registers this module
as a plugin, so any test can ask for ``stripe_server``, ``stripe_api`` or ``stripe_test_gateway``."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from aiohttp import web

from orchestrator.payments.stripe_gateway import StripeGateway, StripeOptions, stripe_gateway
from tests.stripe_server.app import ServerState, build_app

API_KEY = "sk_test_orchestrator"
WEBHOOK_SECRET = "whsec_test_orchestrator"


@dataclass
class RunningServer:
    url: str
    state: ServerState

    @property
    def ledger(self):  # noqa: ANN201 - the current ledger (replaced on reset)
        return self.state.ledger


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerThread:
    """An aiohttp app served from its own thread, so sync and async clients can both reach it."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="stripe-server", daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._runner = web.AppRunner(self.app, access_log=None)
        self.loop.run_until_complete(self._runner.setup())
        self.loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._started.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self._runner.cleanup())
        self.loop.close()

    def __enter__(self) -> str:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the Stripe-shaped server did not start")
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="session")
def stripe_server() -> Iterator[RunningServer]:
    state = ServerState()
    with ServerThread(build_app(state)) as url:
        yield RunningServer(url, state)


@pytest.fixture
def stripe_api(stripe_server: RunningServer) -> Iterator[RunningServer]:
    """The server, emptied for this test, on the real clock: a test that moves Stripe's clock
    (``ledger.clock``) moves it for itself only."""
    stripe_server.state.reset()
    stripe_server.state.ledger.clock = time.time
    yield stripe_server
    stripe_server.state.ledger.clock = time.time


@pytest.fixture
async def stripe_test_gateway(stripe_api: RunningServer) -> AsyncIterator[StripeGateway]:
    built = stripe_gateway(API_KEY, api_base=stripe_api.url, options=StripeOptions())
    yield built
    await built.aclose()
