"""What ``orchestrator dev`` serves on: servers (embedded unless configured), the schema at head,
the demo data, and demo keys the server accepts, kept in the state dir across restarts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from pydantic import SecretStr

from orchestrator.settings import Settings

DEMO_KEYS = "demo-keys.json"  # in the state dir: the keys `orchestrator dev` printed
# in the state dir while `orchestrator dev` runs: its servers, for the other commands to find
DEV_SERVERS = "dev-servers.json"


@contextlib.contextmanager
def dev_stack(settings: Settings, *, reset: bool = False) -> Iterator[tuple[Settings, dict[str, str]]]:
    """What ``orchestrator dev`` serves on: (settings with the servers' URLs and the admin key,
    the demo keys). Starts embedded servers for the URLs that are not set, migrates, loads the
    demo data into an empty database, and leaves ``demo-keys.json`` holding keys this database
    accepts: kept from the last run when they still work, new ones (file rewritten) otherwise."""
    from orchestrator.platform.embedded import EmbeddedServices

    state = settings.state_dir
    if reset and state.exists():
        import shutil

        shutil.rmtree(state)
    state.mkdir(parents=True, exist_ok=True)
    embedded = EmbeddedServices(state, postgres=settings.database_url is None, redis=settings.redis_url is None)
    with embedded:
        keys_file = state / DEMO_KEYS
        saved = json.loads(keys_file.read_text()) if keys_file.exists() else {}
        admin = settings.admin_token_value or saved.get("admin") or f"oo_a_{secrets.token_urlsafe(32)}"
        settings = settings.model_copy(
            update={
                "database_url": settings.database_url or embedded.database_url,
                "redis_url": settings.redis_url or embedded.redis_url,
                # model_copy does not validate: give the field the type it has when read from the env
                "admin_token": SecretStr(admin),
                # A developer's webhook receiver runs on this machine: loopback and http allowed,
                # unless the environment says otherwise.
                "webhook_allow_private_urls": settings.webhook_allow_private_urls
                if "webhook_allow_private_urls" in settings.model_fields_set
                else True,
            }
        )
        from orchestrator.migrate import upgrade_database

        upgrade_database(settings.database_url or "")
        keys = {"admin": admin, **asyncio.run(_demo_keys(settings, saved))}
        if keys != saved:
            _write_private(keys_file, keys)
        servers = state / DEV_SERVERS
        _write_private(servers, {"database_url": settings.database_url, "redis_url": settings.redis_url})
        try:
            yield settings, keys
        finally:
            servers.unlink(missing_ok=True)


def _write_private(path: Path, content: dict[str, object]) -> None:
    """Secrets inside: readable by the owner only, from the first byte on."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(content, f, indent=2)
    os.chmod(path, 0o600)  # the file may predate this rule


async def _demo_keys(settings: Settings, saved: dict[str, str]) -> dict[str, str]:
    from orchestrator.demo_data import load_demo_data, working_demo_keys
    from orchestrator.platform.clock import SystemClock
    from orchestrator.platform.db import Database

    now = SystemClock().now()
    db = Database(settings.database_url or "", pool_size=2, max_overflow=0)
    try:
        fresh = await load_demo_data(db, now)
        return await working_demo_keys(db, {**saved, **(fresh or {})}, now)
    finally:
        await db.dispose()
