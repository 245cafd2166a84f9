"""The database handle: engine, sessions and the unit of work. Built by the app factory, never at
import time."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, NoReturn, TypeVar

import asyncpg
import msgspec
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

T = TypeVar("T")

# Deadlock and serialization failures are the database asking us to try again.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def _json_text(value: object) -> str:
    return msgspec.json.encode(value).decode()


def asyncpg_url(url: str) -> str:
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+asyncpg://" + url[len(plain) :]
    return url


# A database error reaches us either wrapped by SQLAlchemy or, from ``fetch`` on the hot path,
# as asyncpg raised it; the helpers below read both.
DATABASE_ERRORS = (DBAPIError, asyncpg.PostgresError)


def _driver_errors(exc: BaseException) -> list[BaseException]:
    orig = getattr(exc, "orig", None)
    return [e for e in (exc, orig, getattr(orig, "__cause__", None)) if e is not None]


def sqlstate(exc: BaseException) -> str | None:
    for candidate in _driver_errors(exc):
        code = getattr(candidate, "sqlstate", None)
        if code:
            return code
    return None


def constraint_name(exc: BaseException) -> str | None:
    """The constraint a unique/check violation names (asyncpg puts it on the driver error)."""
    for candidate in _driver_errors(exc):
        name = getattr(candidate, "constraint_name", None)
        if name:
            return name
    return None


def is_unique_violation(exc: BaseException) -> bool:
    return isinstance(exc, DATABASE_ERRORS) and sqlstate(exc) == "23505"


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, DATABASE_ERRORS) and sqlstate(exc) in RETRYABLE_SQLSTATES


# The server is not there to answer: connection exceptions (class 08), shutting down or starting
# up (57P01-57P03), out of connections (53300), a statement cancelled by its timeout (57014).
UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300", "57014"})


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached or did not answer in time (refused,
    reset, timed out, shutting down, the pool exhausted), as opposed to a bug or bad input."""
    if isinstance(exc, PoolTimeout):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    for candidate in _driver_errors(exc):
        # OSError covers refused and reset connections and TimeoutError (connect or command
        # timeout); asyncpg's bare InterfaceError, a connection closed or left busy under a
        # statement (its subclasses are bad input or configuration, not an outage).
        if isinstance(candidate, OSError):
            return True
        if type(candidate) is asyncpg.InterfaceError:
            return True
    code = sqlstate(exc)
    return code is not None and (code.startswith("08") or code in UNAVAILABLE_SQLSTATES)


class OutageLog:
    """Says once per incident that the database is unavailable, not once per failed request: an
    incident is a run of failures with no quiet gap longer than ``quiet_s``."""

    def __init__(self, quiet_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._quiet_s = quiet_s
        self._clock = clock
        self._last: float | None = None

    def first_of_incident(self) -> bool:
        now = self._clock()
        first = self._last is None or now - self._last > self._quiet_s
        self._last = now
        return first


class UnitOfWork:
    """One transaction. Leaving the block without ``commit()`` rolls back: writing is explicit."""

    session: AsyncSession

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def __aenter__(self) -> UnitOfWork:
        self.session = self._sessionmaker()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # close() rolls back whatever was not committed and, unlike rollback(), leaves loaded
        # objects readable (detached) for the caller to render.
        await self.session.close()

    async def commit(self) -> None:
        await self.session.commit()


class RetryOnFreshRead(Exception):
    """Another transaction changed what this attempt read (took the stock it planned on, took the
    unique key it was about to insert): ``Database.run`` runs the use case again on fresh numbers,
    as it does after a deadlock (same attempts, same backoff). Subclass it for each such race."""

    def when_exhausted(self) -> Exception:
        """What the caller is told when the race went on past the last attempt."""
        return self


def _raise_exhausted(exc: Exception) -> NoReturn:
    error = exc.when_exhausted() if isinstance(exc, RetryOnFreshRead) else exc
    if error is exc:
        raise exc
    raise error from exc


def _worth_retrying(exc: BaseException) -> bool:
    return isinstance(exc, RetryOnFreshRead) or is_retryable(exc)


class KeepWritesAndRaise(Exception):
    """A use case refuses, but what it wrote must stand (a wrong pickup code counts the failed
    attempt): ``committing`` commits the attempt, then raises ``error``. Without ``committing``
    nothing is kept: it leaves the unit of work like any error, which rolls back."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


def committing(use_case: Callable[[UnitOfWork], Awaitable[T]]) -> Callable[[UnitOfWork], Awaitable[T]]:
    """``use_case``, then commit: for an entry point whose transaction is that one use case.

    Use cases never commit; the entry point that opens the unit of work (through ``Database.run``)
    does, so two use cases can share one transaction and every write is retried on deadlock. A use
    case that raises ``KeepWritesAndRaise`` is committed, then its error is raised."""

    async def attempt(uow: UnitOfWork) -> T:
        try:
            result = await use_case(uow)
        except KeepWritesAndRaise as refusal:
            await uow.commit()
            raise refusal.error from None
        await uow.commit()
        return result

    return attempt


class Database:
    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 20,
        max_overflow: int = 10,
        echo: bool = False,
        connect_timeout_s: float | None = None,
        pool_timeout_s: float | None = None,
        statement_timeout_ms: int | None = None,
    ):
        """Without the timeouts, asyncpg's and SQLAlchemy's own defaults (for the CLI's long
        jobs); the API sets all three so that no wait on the database is unbounded."""
        self.url = asyncpg_url(url)
        server_settings = {"application_name": "orchestrator"}
        connect_args: dict[str, Any] = {"server_settings": server_settings}
        if connect_timeout_s is not None:
            connect_args["timeout"] = connect_timeout_s
        if statement_timeout_ms is not None:
            server_settings["statement_timeout"] = str(statement_timeout_ms)
            # The server cancels a slow statement itself; a server that is hung cannot, so the
            # client gives up a second later.
            connect_args["command_timeout"] = statement_timeout_ms / 1000 + 1.0
        pool: dict[str, Any] = {"pool_timeout": pool_timeout_s} if pool_timeout_s is not None else {}
        self.engine = create_async_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_pre_ping=False,
            echo=echo,
            connect_args=connect_args,
            json_serializer=_json_text,
            json_deserializer=msgspec.json.decode,
            **pool,
        )
        self.outages = OutageLog()
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.sessionmaker)

    async def run(self, use_case: Callable[[UnitOfWork], Awaitable[T]], *, attempts: int = 6) -> T:
        """Run ``use_case`` in a fresh unit of work; run it again on deadlock or serialization
        failure, or on ``RetryOnFreshRead`` (a race the use case detected itself)."""

        # The first attempt runs bare: almost every call succeeds at once, and the retry
        # machinery costs a measurable share of a request on the hot path.
        try:
            async with self.unit_of_work() as uow:
                return await use_case(uow)
        except Exception as exc:
            if not _worth_retrying(exc) or attempts < 2:
                _raise_exhausted(exc)
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(_worth_retrying),
                stop=stop_after_attempt(attempts - 1),
                wait=wait_random_exponential(multiplier=0.002, max=0.05),
                reraise=True,
            ):
                with attempt:
                    async with self.unit_of_work() as uow:
                        return await use_case(uow)
        except Exception as exc:
            _raise_exhausted(exc)
        raise AssertionError("unreachable")  # pragma: no cover

    async def dispose(self) -> None:
        await self.engine.dispose()


async def fetch(session: AsyncSession, sql: str, *params: Any) -> Sequence[Any]:
    """Hand-written SQL with asyncpg's ``$n`` parameters, for hot paths.

    Once the transaction has begun, the statement goes straight to the driver connection
    (prepared and cached there) without SQLAlchemy's per-statement machinery; before that it
    goes through SQLAlchemy, which begins the transaction. Rows unpack like tuples."""
    conn = await session.connection()
    driver = (await conn.get_raw_connection()).driver_connection
    if driver is not None and driver.is_in_transaction():
        return await driver.fetch(sql, *params)
    return (await conn.exec_driver_sql(sql, params)).all()
