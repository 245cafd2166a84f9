"""`orchestrator dev` as a new user runs it: the keys it prints and writes to demo-keys.json are
keys the server accepts, on the first start and on every start after it.

The command runs in a subprocess on a private port with its own state dir, a database of its
own on the test server and its own embedded Redis (its worker must not take jobs of other tests).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from orchestrator.platform.embedded import create_database, drop_database, free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class DevStack:
    """A running ``orchestrator dev``: its base URL and what it printed."""

    base_url: str
    state_dir: Path
    output: list[str] = field(default_factory=list)

    def printed_key(self, who: str) -> str:
        """The key the banner shows for ``who`` (``admin``, ``channel web``, ``staff STORE-001``)."""
        for line in self.output:
            label, _, token = line.strip().rpartition(" ")
            if label.strip() == who and token.startswith("oo_"):
                return token
        raise AssertionError(f"the banner shows no key for {who!r}:\n{''.join(self.output)}")

    def file_keys(self) -> dict[str, str]:
        return json.loads((self.state_dir / "demo-keys.json").read_text())


def dev_environment(state_dir: Path, database_url: str) -> dict[str, str]:
    """The caller's environment without any ORCHESTRATOR_ setting, plus these."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env.update(
        ORCHESTRATOR_STATE_DIR=str(state_dir),
        ORCHESTRATOR_DATABASE_URL=database_url,
        ORCHESTRATOR_LOG_LEVEL="WARNING",
        ORCHESTRATOR_ACCESS_LOG="false",
    )
    return env


@contextmanager
def running_dev_stack(state_dir: Path, database_url: str, *, startup_s: float = 120) -> Iterator[DevStack]:
    """``orchestrator dev --port <free>``, stopped (SIGINT, like Ctrl-C) at the end."""
    port = free_port()
    stack = DevStack(f"http://127.0.0.1:{port}", state_dir)
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "dev", "--port", str(port)],
        cwd=state_dir.parent,  # no .env of the project's
        env=dev_environment(state_dir, database_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: stack.output.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + startup_s
        while True:  # the fact to wait for: the API answers
            assert proc.poll() is None, f"orchestrator dev exited {proc.returncode}:\n{''.join(stack.output)}"
            assert time.monotonic() < deadline, f"orchestrator dev did not answer:\n{''.join(stack.output)}"
            try:
                if httpx.get(f"{stack.base_url}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield stack
    finally:
        if proc.poll() is None:
            proc.send_signal(2)  # SIGINT
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        reader.join(5)


def _new_database(servers: tuple[str, str]) -> Iterator[str]:
    """A database of its own on the test server, dropped after the test."""
    name = f"orch_dev_{uuid.uuid4().hex[:8]}"
    url = create_database(servers[0], name)
    yield url
    drop_database(servers[0], name)


@pytest.fixture
def dev_database(servers: tuple[str, str]) -> Iterator[str]:
    yield from _new_database(servers)


@pytest.fixture
def another_dev_database(servers: tuple[str, str]) -> Iterator[str]:
    yield from _new_database(servers)


def _admin_can_simulate(base_url: str, token: str) -> httpx.Response:
    """An admin-only endpoint that changes nothing."""
    return httpx.post(
        f"{base_url}/v1/sourcing/simulate",
        json={
            "method": "ship",
            "lat": 40.73,
            "lon": -73.99,
            "lines": [{"sku": "SKU-00001", "quantity": 1, "unit_price": 100}],
        },
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def _assert_every_key_works(stack: DevStack) -> None:
    keys = stack.file_keys()
    for who in ("admin", "channel web"):
        assert stack.printed_key(who) == keys[who], f"the banner and demo-keys.json disagree on {who}"
    r = _admin_can_simulate(stack.base_url, keys["admin"])
    assert r.status_code == 200, r.text
    for who, token in keys.items():
        if who == "admin":
            continue
        path = f"/v1/locations/{who.removeprefix('staff ')}/fulfillments" if who.startswith("staff") else "/v1/orders"
        r = httpx.get(f"{stack.base_url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert r.status_code == 200, (who, r.text)


def test_the_keys_dev_prints_and_writes_are_accepted_on_every_start(tmp_path: Path, dev_database: str) -> None:
    state = tmp_path / "state"
    with running_dev_stack(state, dev_database) as first:
        assert (state / "demo-keys.json").stat().st_mode & 0o077 == 0, "the keys file is the owner's only"
        _assert_every_key_works(first)
        keys_of_the_first_run = first.file_keys()
    with running_dev_stack(state, dev_database) as second:  # a restart, no --reset
        _assert_every_key_works(second)
        assert second.file_keys() == keys_of_the_first_run, "a restart keeps the keys that still work"


def test_a_keys_file_from_another_database_is_rewritten_with_keys_that_work(
    tmp_path: Path, dev_database: str, another_dev_database: str
) -> None:
    state = tmp_path / "state"
    with running_dev_stack(state, dev_database) as first:
        old = first.file_keys()
    with running_dev_stack(state, another_dev_database) as second:  # the database was replaced
        _assert_every_key_works(second)
        new = second.file_keys()
    assert new["admin"] == old["admin"], "the bootstrap admin key lives in the file, not the database"
    assert new["channel web"] != old["channel web"], "a key the new database never issued was replaced"
