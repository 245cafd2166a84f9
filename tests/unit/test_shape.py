"""The shape the reshape (issue 8) set: capabilities that import only what lies below them, and
modules short enough to read in one sitting. The import contracts themselves are in
pyproject.toml ([tool.importlinter]); scripts/test runs ``lint-imports`` before the suite, and
this test runs it too so a broken contract fails wherever the tests run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 350


def test_every_module_stays_under_350_lines():
    long = {
        str(path.relative_to(ROOT)): n
        for folder in ("orchestrator", "connectors")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_the_benchmarks_still_import_what_they_measure():
    """bench/ is outside the suite's imports; a moved module would break it unseen until the
    next measurement."""
    for script in ("intake", "sourcing"):
        result = subprocess.run(
            [sys.executable, str(ROOT / "bench" / f"{script}.py"), "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"bench/{script}.py: {result.stderr[-2000:]}"
