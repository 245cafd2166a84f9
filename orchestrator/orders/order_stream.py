"""Live order events for Server-Sent Events, read from the events stream the outbox relay writes.

One reader per process (``OrderEventFeed``) follows the Redis stream and hands each entry to the
connections following its order, so a thousand connections cost one XREAD, not a thousand. A
connection first catches up with XRANGE from where its client left off, then takes what the
reader hands it; both are ordered by the stream entry id, which is also the SSE ``id``, so a
client that reconnects with ``Last-Event-ID`` gets exactly what it missed.

What only the customer's notification may carry (a pickup code: ``EventSpec.private``) is in the
stream entry and is removed here, before anything is handed to a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from litestar.response import ServerSentEventMessage
from redis.asyncio import Redis

from orchestrator.platform.errors import InvalidRequest, RateLimited
from orchestrator.platform.events import CATALOGUE, PRIVATE_FIELDS, EventType

log = logging.getLogger(__name__)

_ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
# The reader's XREAD waits this long for an entry, then asks again (so it stops promptly).
_BLOCK_MS = 1000
# A connection whose client reads slower than events come is closed after this many pending
# events; its client reconnects with Last-Event-ID and catches up from the stream.
_MAX_PENDING = 1000
# When a connection slot frees up again (Retry-After, seconds): streams are long-lived.
RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True, slots=True)
class OrderStreamEvent:
    """One event of an order as a stream may show it: no private field left in ``payload``."""

    entry_id: str  # the Redis stream entry id, the SSE id
    type: str
    payload: dict[str, Any]


def private_fields_of(type_: str) -> tuple[str, ...]:
    """The keys of ``type_``'s private struct; for a type this version does not know, every
    private key of the catalogue (better too much removed than a code shown)."""
    try:
        return CATALOGUE[EventType(type_)].private_fields
    except ValueError:
        return PRIVATE_FIELDS


def public_event(entry_id: str, fields: dict[bytes, bytes]) -> OrderStreamEvent:
    """A stream entry as the relay wrote it (``outbox_relay.publish``), its private keys removed."""
    type_ = fields[b"type"].decode()
    payload = json.loads(fields[b"payload"])
    data = payload.get("data")
    if isinstance(data, dict):
        private = private_fields_of(type_)
        payload["data"] = {k: v for k, v in data.items() if k not in private}
    return OrderStreamEvent(entry_id, type_, payload)


def _readable(entry_id: str, fields: dict[bytes, bytes]) -> OrderStreamEvent | None:
    """``public_event``, or ``None`` (logged) for an entry not in the relay's format: one bad
    entry must not stop the reader every stream of the process depends on."""
    try:
        return public_event(entry_id, fields)
    except (KeyError, ValueError, UnicodeDecodeError):
        log.warning("order event feed: entry %s is not an outbox message; skipped", entry_id)
        return None


def parse_last_event_id(value: str | None) -> str | None:
    """``Last-Event-ID`` is a stream entry id this service sent (``<ms>-<seq>``), or absent."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if not _ENTRY_ID.match(value):
        raise InvalidRequest("Last-Event-ID must be an id this stream sent", field="Last-Event-ID")
    return value


def _entry_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)


@dataclass(eq=False)
class _Follower:
    order_id: str
    pending: list[OrderStreamEvent] = field(default_factory=list)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    overflowed: bool = False


class OrderEventFeed:
    """The process's one reader of the events stream, started with the first follower."""

    def __init__(self, redis: Redis, stream: str) -> None:
        self.redis = redis
        self.stream = stream
        self._followers: dict[str, set[_Follower]] = defaultdict(set)
        self._reader: asyncio.Task[None] | None = None
        self._started: asyncio.Event | None = None

    async def latest_entry_id(self) -> str:
        """The id of the stream's newest entry (``0-0`` when empty): where a new client starts."""
        newest = await self.redis.xrevrange(self.stream, count=1)
        return newest[0][0].decode() if newest else "0-0"

    async def _ensure_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._started = asyncio.Event()
            self._reader = asyncio.create_task(self._read(self._started), name="order-event-feed")
        assert self._started is not None
        await self._started.wait()
        if self._reader.done():  # failed before it began to follow: say why
            self._reader.result()

    async def _read(self, started: asyncio.Event) -> None:
        try:
            cursor = await self.latest_entry_id()
        finally:
            started.set()
        while True:
            try:
                answer = await self.redis.xread({self.stream: cursor}, block=_BLOCK_MS, count=500)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis away: the followers wait (heartbeats go on), the reader retries
                log.warning("order event feed: reading %s failed; retrying", self.stream, exc_info=True)
                await asyncio.sleep(1.0)
                continue
            for _, entries in answer or ():
                for raw_id, fields in entries:
                    cursor = raw_id.decode()
                    self._hand_out(cursor, fields)

    def _hand_out(self, entry_id: str, fields: dict[bytes, bytes]) -> None:
        followers = self._followers.get(fields.get(b"order_id", b"").decode())
        if not followers:
            return
        event = _readable(entry_id, fields)
        if event is None:
            return
        for f in list(followers):
            if len(f.pending) >= _MAX_PENDING:
                f.overflowed = True
                followers.discard(f)
            else:
                f.pending.append(event)
            f.wakeup.set()

    async def _follow(self, order_id: str) -> _Follower:
        await self._ensure_reader()
        follower = _Follower(order_id)
        self._followers[order_id].add(follower)
        return follower

    def _leave(self, follower: _Follower) -> None:
        followers = self._followers.get(follower.order_id)
        if followers is not None:
            followers.discard(follower)
            if not followers:
                del self._followers[follower.order_id]

    async def _catch_up(self, order_id: str, after: str) -> list[OrderStreamEvent]:
        """The order's entries after ``after``, from the stream itself, in pages."""
        found: list[OrderStreamEvent] = []
        cursor = after
        while True:
            page = await self.redis.xrange(self.stream, min=f"({cursor}", max="+", count=1000)
            for raw_id, fields in page:
                if fields.get(b"order_id", b"").decode() == order_id:
                    event = _readable(raw_id.decode(), fields)
                    if event is not None:
                        found.append(event)
            if len(page) < 1000:
                return found
            cursor = page[-1][0].decode()

    async def events(
        self, order_id: str, after: str, *, heartbeat_seconds: float
    ) -> AsyncIterator[OrderStreamEvent | None]:
        """The order's events after entry ``after``, then live, without end; ``None`` whenever
        ``heartbeat_seconds`` pass without one. Ends when the client falls too far behind."""
        follower = await self._follow(order_id)  # before catching up: nothing falls between
        try:
            last = _entry_key(after)
            for event in await self._catch_up(order_id, after):
                last = _entry_key(event.entry_id)
                yield event
            while True:
                if not follower.pending and not follower.overflowed:
                    follower.wakeup.clear()
                    try:
                        await asyncio.wait_for(follower.wakeup.wait(), heartbeat_seconds)
                    except TimeoutError:
                        yield None
                        continue
                batch, follower.pending = follower.pending, []
                for event in batch:
                    key = _entry_key(event.entry_id)
                    if key > last:  # the catch-up may have read it already
                        last = key
                        yield event
                if follower.overflowed:
                    return
        finally:
            self._leave(follower)

    async def aclose(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None


def sse_message(event: OrderStreamEvent, shape: Callable[[dict[str, Any]], dict[str, Any]] | None = None):
    payload = shape(event.payload) if shape is not None else event.payload
    return ServerSentEventMessage(data=json.dumps(payload, separators=(",", ":")), event=event.type, id=event.entry_id)


async def order_events_stream(
    feed: OrderEventFeed,
    order_id: str,
    last_event_id: str | None,
    *,
    heartbeat_seconds: float,
    shape: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    start: str | None = None,
) -> AsyncIterator[ServerSentEventMessage]:
    """SSE messages for one order (content for ``litestar.response.ServerSentEvent``): ``id`` is
    the stream entry id, ``event`` the event type, ``data`` the event as JSON without private
    fields (``shape`` may redact more, e.g. for a public view); a comment every
    ``heartbeat_seconds`` while nothing happens.

    Resuming from ``last_event_id`` reads the stream from that entry on. The stream keeps entries
    for ``ORCHESTRATOR_EVENTS_STREAM_RETENTION_HOURS`` only (and at most
    ``EVENTS_STREAM_MAXLEN``): events older than that are gone, read the order's timeline
    (``GET /v1/orders/{id}/events``) instead. Without ``last_event_id`` the stream starts at
    ``start`` (the newest entry when the request came in: take it before answering, so that an
    event committed right after the client connected is not missed) or else now."""
    after = last_event_id or start or await feed.latest_entry_id()
    async for event in feed.events(order_id, after, heartbeat_seconds=heartbeat_seconds):
        yield ServerSentEventMessage(comment="heartbeat", data=None) if event is None else sse_message(event, shape)


class ConnectionSlots:
    """Open streams, bounded per API key and in total (in this process)."""

    def __init__(self, per_key: int, total: int) -> None:
        self.per_key = per_key
        self.total = total
        self._open: dict[str, int] = {}
        self._count = 0

    def take(self, key: str) -> StreamSlot:
        if self._count >= self.total:
            raise RateLimited("too many open streams on this server", retry_after=RETRY_AFTER_SECONDS)
        if self._open.get(key, 0) >= self.per_key:
            raise RateLimited(f"at most {self.per_key} open streams per API key", retry_after=RETRY_AFTER_SECONDS)
        self._open[key] = self._open.get(key, 0) + 1
        self._count += 1
        return StreamSlot(self, key)

    def _give_back(self, key: str) -> None:
        self._count -= 1
        left = self._open[key] - 1
        if left:
            self._open[key] = left
        else:
            del self._open[key]

    @property
    def open_count(self) -> int:
        return self._count


class StreamSlot:
    """One open stream's place; ``release`` may be called more than once (the stream's end and
    the response's background task both call it: either may be skipped by a disconnect)."""

    def __init__(self, slots: ConnectionSlots, key: str) -> None:
        self._slots = slots
        self._key = key
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots._give_back(self._key)

    async def release_after_response(self) -> None:  # a background task: async, so not in a thread
        self.release()


async def holding(slot: StreamSlot, messages: AsyncIterator[ServerSentEventMessage]):
    """``messages``, giving ``slot`` back when they end or the client leaves."""
    try:
        async for message in messages:
            yield message
    finally:
        slot.release()
