"""The database outage is logged once per incident: a run of failures without a long quiet gap."""

from __future__ import annotations

from orchestrator.platform.db import OutageLog


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_incident_is_logged_at_its_first_failure_only() -> None:
    ticks = Ticks()
    log = OutageLog(quiet_s=30.0, clock=ticks)
    seen = []
    for _ in range(1000):
        seen.append(log.first_of_incident())
        ticks.now += 0.01
    assert seen.count(True) == 1 and seen[0]


def test_failures_after_a_quiet_gap_are_a_new_incident() -> None:
    ticks = Ticks()
    log = OutageLog(quiet_s=30.0, clock=ticks)
    assert log.first_of_incident()
    ticks.now += 29.0
    assert not log.first_of_incident()
    ticks.now += 31.0
    assert log.first_of_incident()
