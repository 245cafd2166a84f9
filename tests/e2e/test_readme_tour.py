"""The README's short tour is scripts/tour, run here against `orchestrator dev` with its demo data
on a private port; the README shows the script's tour word for word. And `orchestrator events`,
which the tour ends with, by number, by id, as JSON, for an order that does not exist, and never
with a pickup code (one still waits in the outbox until relayed)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.fulfillment.requests import Accept, MarkReady, Pick, StartPicking
from orchestrator.fulfillment.service import LifecycleSettings
from orchestrator.platform.embedded import create_database, drop_database
from tests.e2e.support import pickup_code
from tests.integration.test_dev_stack import DevStack, dev_environment, running_dev_stack
from tests.integration.world import act, add_location, add_product, place, set_stock

ROOT = Path(__file__).resolve().parents[2]
TOUR = ROOT / "scripts" / "tour"
MARKER = "# --- tour ---"


@pytest.fixture(scope="module")
def dev_database(servers: tuple[str, str]) -> Iterator[str]:
    name = f"orch_tour_{uuid.uuid4().hex[:8]}"
    url = create_database(servers[0], name)
    yield url
    drop_database(servers[0], name)


@pytest.fixture(scope="module")
def stack(dev_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    with running_dev_stack(tmp_path_factory.mktemp("tour") / "state", dev_database) as running:
        yield running


def _cli() -> str:
    beside = Path(sys.executable).parent / "orchestrator"
    return str(beside if beside.exists() else ROOT / ".venv" / "bin" / "orchestrator")


def test_the_readme_tour_runs_against_the_dev_stack_as_written(stack: DevStack, dev_database: str) -> None:
    env = {**dev_environment(stack.state_dir, dev_database), "ORCHESTRATOR": _cli()}
    del env["ORCHESTRATOR_DATABASE_URL"]  # `orchestrator events` finds the dev stack's database itself
    run = subprocess.run(
        ["bash", str(TOUR), stack.base_url, str(stack.state_dir / "demo-keys.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    out = run.stdout
    for step in ("/accept → 200", "/pick → 200", "/ready → 200", "/resend-code → 200", "/handover → 200"):
        assert step in out, f"no {step!r} in the tour's output:\n{out}"
    assert "Idempotent-Replayed: true" in out
    assert re.search(r"/changes\?dry_run=true → 200.*/changes → 200", out, re.S), "a dry run, then the change"
    assert re.search(r"/cancel → 200.*/cancel → 412", out, re.S), "cancel, then a stale If-Match"
    # the last step, `orchestrator events NUMBER`: the whole pickup on the timeline
    assert "status completed" in out and "fulfillment.picked_up" in out


def test_the_readme_shows_the_tour_the_script_runs() -> None:
    script = TOUR.read_text()
    tour = script.split(MARKER)[1].strip("\n")
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## A short tour", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)\n```", section, re.S)
    assert tour in blocks, "README's tour differs from scripts/tour; paste the part between the tour markers"


def _place_order(stack: DevStack) -> dict:
    ref = f"CLI-{uuid.uuid4().hex[:8]}"
    r = httpx.post(
        f"{stack.base_url}/v1/orders",
        json={
            "channel_order_ref": ref,
            "customer": {"email": "bo@example.com", "name": "Bo"},
            "lines": [{"sku": "SKU-00002", "quantity": 1, "unit_price": 500}],
            "currency": "USD",
            "fulfillment": {"method": "pickup", "location": "STORE-004"},
        },
        headers={"Authorization": f"Bearer {stack.file_keys()['channel web']}", "Idempotency-Key": ref},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    return r.json()


def _events(dev_database: str, *args: str):  # type: ignore[no-untyped-def]
    env = {k: None for k in os.environ if k.startswith("ORCHESTRATOR_")}
    return CliRunner().invoke(app, ["events", *args], env={**env, "ORCHESTRATOR_DATABASE_URL": dev_database})


def test_events_prints_the_timeline_and_outbox_of_an_order_by_number_or_id(stack: DevStack, dev_database: str) -> None:
    order = _place_order(stack)
    by_number = _events(dev_database, order["number"].lower())  # as a customer might type it
    assert by_number.exit_code == 0, by_number.output
    assert f"order {order['number']}" in by_number.output and order["id"] in by_number.output
    timeline, outbox = by_number.output.split("outbox (latest)")
    assert "order.placed" in timeline and "order.sourced" in timeline
    assert "order.placed" in outbox, "the outbox message of the placement"
    by_id = _events(dev_database, order["id"])
    assert by_id.exit_code == 0, by_id.output
    assert f"order {order['number']}" in by_id.output


def test_events_as_json_lists_timeline_and_outbox(stack: DevStack, dev_database: str) -> None:
    order = _place_order(stack)
    result = _events(dev_database, order["number"], "--json", "--limit", "1")
    assert result.exit_code == 0, result.output
    history = json.loads(result.output)
    assert history["order_id"] == order["id"]
    assert [e["type"] for e in history["timeline"]] == ["order.placed", "order.sourced"]
    assert [m["type"] for m in history["outbox"]] == ["order.sourced"], "the latest one only"


def test_events_for_an_unknown_order_says_so_and_fails(stack: DevStack, dev_database: str) -> None:
    result = _events(dev_database, "ZZZ-ZZZZ")
    assert result.exit_code == 1
    assert "no order ZZZ-ZZZZ" in result.output


async def test_events_never_shows_the_pickup_code_of_a_ready_event_still_waiting_to_be_relayed(
    db, clock, database_url: str
) -> None:
    """No worker runs: the ready event waits in the outbox with the code for the notification."""
    lifecycle = LifecycleSettings(secret="tour-secret")
    await add_location(db, "S1")
    await add_product(db, "A")
    await set_stock(db, "S1", "A", 5)
    order = await place(db, clock, [("A", 1)])
    fo = order["fulfillment_orders"][0]
    fo_id, line_id = uuid.UUID(fo["id"]), uuid.UUID(fo["lines"][0]["id"])
    for request in (Accept(), StartPicking(), Pick({line_id: 1}), MarkReady()):
        await act(db, clock, fo_id, request, lifecycle)
    code = await pickup_code(db, fo_id)
    assert code and code.isdigit(), "the waiting message carries the code for the notification"

    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}

    async def events(*args: str) -> str:
        run = await asyncio.create_subprocess_exec(
            _cli(),
            "events",
            order["number"],
            *args,
            env={**env, "ORCHESTRATOR_DATABASE_URL": database_url},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out = (await asyncio.wait_for(run.communicate(), timeout=60))[0].decode()
        assert run.returncode == 0, out
        # the code as a whole number (not the microseconds of a timestamp, not inside an id)
        assert "pickup_code" not in out and not re.search(rf"(?<![\w.]){code}(?!\w)", out), out
        return out

    table = await events()
    assert "fulfillment.ready_for_pickup" in table and "waiting" in table
    history = json.loads(await events("--json"))
    (ready,) = [m for m in history["outbox"] if m["type"] == "fulfillment.ready_for_pickup"]
    assert ready["published_at"] is None and ready["data"]["fulfillment_id"] == fo["id"]
