"""The database handle: engine, sessions and the unit of work. Built by the app factory, never at
import time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

import asyncpg
import msgspec
from sqlalchemy.exc import DBAPIError
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


class UnitOfWork:
    """One transaction. Leaving the block without ``commit()`` rolls back: writing is explicit."""

    session: AsyncSession

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._committed = False

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
        self._committed = True


class Database:
    def __init__(self, url: str, *, pool_size: int = 20, max_overflow: int = 10, echo: bool = False):
        self.url = asyncpg_url(url)
        self.engine = create_async_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_pre_ping=False,
            echo=echo,
            connect_args={"server_settings": {"application_name": "orchestrator"}},
            json_serializer=_json_text,
            json_deserializer=msgspec.json.decode,
        )
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.sessionmaker)

    async def run(
        self,
        use_case: Callable[[UnitOfWork], Awaitable[T]],
        *,
        also_retry: tuple[type[BaseException], ...] = (),
        attempts: int = 6,
    ) -> T:
        """Run ``use_case`` in a fresh unit of work; run it again on deadlock or serialization
        failure, or on ``also_retry`` (a race the use case detected itself)."""

        def worth_retrying(exc: BaseException) -> bool:
            return isinstance(exc, also_retry) or is_retryable(exc)

        # The first attempt runs bare: almost every call succeeds at once, and the retry
        # machinery costs a measurable share of a request on the hot path.
        try:
            async with self.unit_of_work() as uow:
                return await use_case(uow)
        except Exception as exc:
            if not worth_retrying(exc) or attempts < 2:
                raise
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(worth_retrying),
            stop=stop_after_attempt(attempts - 1),
            wait=wait_random_exponential(multiplier=0.002, max=0.05),
            reraise=True,
        ):
            with attempt:
                async with self.unit_of_work() as uow:
                    return await use_case(uow)
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
