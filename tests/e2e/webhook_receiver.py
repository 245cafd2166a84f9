"""A webhook subscriber for tests: a real HTTP server on a loopback port that records what it
receives and answers as told (status codes in turn, or never)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: str
    at: float = 0.0  # time.time() on arrival (the webhook benchmark's clock)


@dataclass
class Receiver:
    port: int = 0
    # Answers in turn; the last repeats. ``None``: hold the request open and never answer.
    answers: list[int | None] = field(default_factory=lambda: [200])
    received: list[Received] = field(default_factory=list)
    open_requests: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _server: asyncio.Server | None = None
    _held: set[asyncio.Task] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def _answer(self) -> int | None:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_requests += 1
        me = asyncio.current_task()
        self._held.add(me)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.received.append(Received(request_line.split(" ")[1], headers, body.decode(), time.time()))
            self.arrived.set()
            status = self._answer()
            if status is None:
                await asyncio.Event().wait()  # hangs until the server closes
            extra = "Location: http://127.0.0.1:1/elsewhere\r\n" if 300 <= status < 400 else ""
            writer.write(f"HTTP/1.1 {status} X\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.open_requests -= 1
            self._held.discard(me)
            writer.close()

    async def wait_for(self, count: int, seconds: float = 10.0) -> list[Received]:
        """Until ``count`` requests arrived (a fact, not a sleep), at most ``seconds``."""
        async with asyncio.timeout(seconds):
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.received


@contextlib.asynccontextmanager
async def receiving(answers: list[int | None] | None = None) -> AsyncIterator[Receiver]:
    receiver = Receiver(answers=answers or [200])
    server = await asyncio.start_server(receiver._handle, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        server.close()
        held = list(receiver._held)  # requests held open (a hanging subscriber) end with the server
        for task in held:
            task.cancel()
        await asyncio.gather(*held, return_exceptions=True)
