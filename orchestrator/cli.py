"""The ``orchestrator`` command: serve, worker, dev, db, import, keys, demo, events, bench."""

from __future__ import annotations

import asyncio
import contextlib
import json
import runpy
import sys
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Annotated

import msgspec
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from orchestrator.migrate import PROJECT_ROOT, upgrade_database
from orchestrator.settings import Settings

app = typer.Typer(help="Omnichannel order orchestrator.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
import_app = typer.Typer(help="Bulk imports.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
demo_app = typer.Typer(help="Demo data.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(import_app, name="import")
app.add_typer(keys_app, name="keys")
app.add_typer(demo_app, name="demo")
console = Console()


def _require_database(settings: Settings) -> str:
    if not settings.database_url:
        console.print("[red]ORCHESTRATOR_DATABASE_URL is not set[/red] (or use `orchestrator dev`)")
        raise typer.Exit(2)
    return settings.database_url


def _with_database(settings: Settings) -> Settings:
    """``settings`` with a database: the configured one, else the one of the ``orchestrator dev``
    running on this state dir, so that ``keys create``, ``events`` and the rest work beside it."""
    from orchestrator.dev_stack import DEV_SERVERS

    running = settings.state_dir / DEV_SERVERS
    if not settings.database_url and running.exists():
        servers = json.loads(running.read_text())
        settings = settings.model_copy(
            update={"database_url": servers["database_url"], "redis_url": settings.redis_url or servers["redis_url"]}
        )
    _require_database(settings)
    return settings


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration (alembic upgrade head)."""
    upgrade_database(_with_database(Settings()).database_url or "")
    console.print("database is at head")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(help="port")] = None,
    workers: Annotated[int | None, typer.Option(help="worker processes")] = None,
) -> None:
    """Run the HTTP API."""
    import uvicorn

    settings = Settings()
    _require_database(settings)
    uvicorn.run(
        "orchestrator.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers or settings.workers,
        access_log=False,
        log_config=None,
        loop="uvloop",
        http="httptools",
    )


@app.command()
def worker() -> None:
    """Run the arq worker: outbox relay and pickup timers."""
    settings = Settings()
    _require_database(settings)
    from orchestrator.platform.observability import configure_logging

    configure_logging(settings.log_level)
    asyncio.run(_run_worker(settings))


async def _run_worker(settings: Settings) -> None:
    from orchestrator.worker import run_worker  # rides out Redis and PostgreSQL outages

    await run_worker(settings)


async def _serve_all(settings: Settings) -> None:
    """API and worker in one event loop (dev mode): the worker stops when the server does."""
    import uvicorn

    from orchestrator.app import create_app
    from orchestrator.worker import run_worker

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            access_log=False,
            log_config=None,
            loop="uvloop",
        )
    )
    worker_task = asyncio.create_task(run_worker(settings))
    try:
        await server.serve()
    finally:
        worker_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await worker_task


@app.command()
def dev(
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    reset: Annotated[bool, typer.Option(help="delete the embedded data first")] = False,
) -> None:
    """Everything in one command: embedded PostgreSQL and Redis (unless ORCHESTRATOR_DATABASE_URL /
    ORCHESTRATOR_REDIS_URL are set), migrations, demo data, the API and the worker."""
    from orchestrator.dev_stack import dev_stack

    with dev_stack(Settings().model_copy(update={"host": host, "port": port}), reset=reset) as (settings, keys):
        console.print(f"[bold]database[/bold] {settings.database_url}", soft_wrap=True, highlight=False)
        console.print(f"[bold]redis[/bold]    {settings.redis_url}", soft_wrap=True, highlight=False)
        _print_keys(keys, settings)
        asyncio.run(_serve_all(settings))


async def _load_demo(settings: Settings) -> dict[str, str] | None:
    from orchestrator.demo_data import load_demo_data
    from orchestrator.platform.clock import SystemClock
    from orchestrator.platform.db import Database

    db = Database(settings.database_url or "", pool_size=2, max_overflow=0)
    try:
        return await load_demo_data(db, SystemClock().now())
    finally:
        await db.dispose()


def _print_keys(keys: dict[str, str], settings: Settings) -> None:
    console.print(
        f"[bold]API keys[/bold] (Authorization: Bearer <key>; all of them in {settings.state_dir / 'demo-keys.json'})",
        soft_wrap=True,
    )
    for who, token in keys.items():
        if who == "admin" or who.startswith("channel") or who in ("staff STORE-001", "staff STORE-002"):
            console.print(f"  {who:<28} {token}", soft_wrap=True, highlight=False)
    console.print(f"staff keys for all {sum(k.startswith('staff') for k in keys)} locations are in the file.")
    base = f"http://{settings.host}:{settings.port}"
    console.print(f"API docs: {base}/schema   health: {base}/health/ready", soft_wrap=True, highlight=False)


@import_app.command("inventory")
def import_inventory_command(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV: location,sku,on_hand")],
) -> None:
    """Set on-hand levels from a CSV (COPY into a staging table, then one upsert; all or nothing)."""
    settings = _with_database(Settings())
    report = asyncio.run(_import(settings, path, path.stat().st_size))
    if report.errors:
        console.print(f"[red]nothing imported[/red]: {len(report.errors)} problem(s)")
        for error in report.errors:
            console.print(f"  {error}")
        raise typer.Exit(1)
    console.print(f"imported {report.rows} rows; {report.changed} levels changed")


async def _import(settings: Settings, path: Path, size: int):  # type: ignore[no-untyped-def]
    from orchestrator.inventory.bulk_import import ImportRejected, import_inventory
    from orchestrator.platform.actors import Actor
    from orchestrator.platform.db import Database, committing

    db = Database(settings.database_url or "", pool_size=1, max_overflow=0)
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(), console=console
    )

    async def chunks() -> AsyncIterator[bytes]:
        with path.open("rb") as f:
            while chunk := f.read(256 * 1024):
                progress.update(task, advance=len(chunk))
                yield chunk

    try:
        with progress:
            task = progress.add_task(f"importing {path.name}", total=size)
            importing = partial(import_inventory, chunks=chunks(), actor=Actor(kind="admin", id="cli-import"))
            return await db.run(committing(importing), attempts=1)  # one attempt: the file streams once
    except ImportRejected as rejected:
        return rejected.report
    finally:
        await db.dispose()


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="admin | channel | staff")],
    name: Annotated[str, typer.Option(help="who the key is for")] = "cli",
    channel: Annotated[str | None, typer.Option(help="channel name (channel keys)")] = None,
    location: Annotated[list[str] | None, typer.Option(help="location code (staff keys; repeat)")] = None,
    scope: Annotated[
        list[str] | None, typer.Option(help="a scope (repeat); default: the role's (see README, Scopes)")
    ] = None,
) -> None:
    """Create an API key and print it once (only its digest is stored)."""
    from orchestrator.platform.actors import Role
    from orchestrator.platform.errors import DomainError

    settings = _with_database(Settings())
    try:
        parsed = Role(role)
    except ValueError:
        console.print(f"[red]unknown role {role}[/red]; use admin, channel or staff")
        raise typer.Exit(2) from None
    try:
        token = asyncio.run(_create_key(settings, parsed, name, channel, location or [], scope))
    except DomainError as exc:
        console.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(2) from None
    console.print(token)


async def _create_key(  # type: ignore[no-untyped-def]
    settings: Settings, role, name: str, channel: str | None, locations: list[str], scopes: list[str] | None
) -> str:
    from orchestrator.platform.api_keys import create_key
    from orchestrator.platform.clock import SystemClock
    from orchestrator.platform.db import Database, committing

    db = Database(settings.database_url or "", pool_size=1, max_overflow=0)
    creating = partial(
        create_key, role=role, name=name, channel=channel, locations=locations, scopes=scopes, now=SystemClock().now()
    )
    try:
        token, _ = await db.run(committing(creating))
        return token
    finally:
        await db.dispose()


@demo_app.command("load")
def demo_load() -> None:
    """Load the demo stores, products and stock into an empty database; prints the demo keys."""
    settings = _with_database(Settings())
    keys = asyncio.run(_load_demo(settings))
    if keys is None:
        console.print("the catalogue already holds data; nothing loaded")
        return
    _print_keys(keys, settings)


@app.command()
def events(
    order: Annotated[str, typer.Argument(help="the order's id or number")],
    limit: Annotated[int, typer.Option(min=1, help="outbox events to show, the latest")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of tables")] = False,
) -> None:
    """An order's timeline and its latest outbox events (published or still waiting)."""
    from orchestrator.platform.errors import NotFound

    settings = _with_database(Settings())
    try:
        history = asyncio.run(_order_history(settings, order, limit))
    except NotFound as exc:
        console.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(msgspec.json.format(msgspec.json.encode(history), indent=2).decode())
        return
    # Piped, rich would squeeze the tables into 80 columns; a log or a pager takes wide lines.
    out = console if console.is_terminal else Console(width=160)
    out.print(
        f"[bold]order {history.number}[/bold]  {history.order_id}  channel {history.channel}  "
        f"status [bold]{history.status}[/bold]",
        soft_wrap=True,
        highlight=False,
    )
    timeline = Table(title="timeline", title_justify="left", show_lines=True)
    outbox = Table(title="outbox (latest)", title_justify="left", show_lines=True)
    for table, headings in ((timeline, ("seq", "at", "type", "actor")), (outbox, ("id", "type", "written", "sent"))):
        for heading in headings:
            table.add_column(heading, no_wrap=True)
        table.add_column("data", overflow="fold")  # ids and codes whole, never cut with an ellipsis
    for e in history.timeline:
        timeline.add_row(str(e.seq), f"{e.occurred_at:%m-%d %H:%M:%S}", e.type, e.actor, _fields(e.data))
    for m in history.outbox:
        sent = f"{m.published_at:%H:%M:%S}" if m.published_at else f"[yellow]waiting[/yellow] ({m.attempts} tries)"
        outbox.add_row(str(m.id), m.type, f"{m.created_at:%m-%d %H:%M:%S}", sent, _fields(m.data))
    out.print(timeline)
    out.print(outbox)


def _fields(data: dict) -> str:
    """One ``name=value`` a line; nested values as compact JSON."""
    return "\n".join(
        f"{name}={value if isinstance(value, str) else json.dumps(value, separators=(',', ':'), default=str)}"
        for name, value in data.items()
    )


async def _order_history(settings: Settings, order: str, limit: int):  # type: ignore[no-untyped-def]
    from orchestrator.orders.history import order_history
    from orchestrator.platform.db import Database

    db = Database(settings.database_url or "", pool_size=1, max_overflow=0)
    try:
        return await order_history(db, order, outbox_limit=limit)
    finally:
        await db.dispose()


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []})
def bench(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="intake|sourcing|changes|stream|webhooks")]
) -> None:
    """Run a benchmark from bench/ (extra options are passed through)."""
    script = PROJECT_ROOT / "bench" / f"{name}.py"
    if not script.exists():
        console.print(f"[red]no benchmark {name}[/red]; see bench/")
        raise typer.Exit(2)
    sys.argv = [str(script), *ctx.args]
    sys.path.insert(0, str(script.parent))  # as `python bench/<name>.py` would have it
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":  # pragma: no cover
    app()
