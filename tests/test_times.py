"""Times another writer left in a shared registry: one written without an offset is read as UTC (as ode writes every
time), one that is no time at all shows as unknown; neither stops `ode status` or `ode env list`."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ode.clock import parse_iso
from ode.contracts import load_library
from ode.engines.simulated import SimulatedEngine
from ode.execution.orchestrator import Orchestrator
from ode.registry.sqlite import Registry
from ode.rendering import ago, exact, expiry

from .cli_runner import ode
from .conftest import SAMPLE

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_a_time_without_an_offset_is_utc() -> None:
    assert parse_iso("2026-05-01T11:57:00") == datetime(2026, 5, 1, 11, 57, tzinfo=UTC)
    assert parse_iso("2026-05-01T13:57:00+02:00") == datetime(2026, 5, 1, 11, 57, tzinfo=UTC)
    assert parse_iso("") is None and parse_iso(None) is None
    with pytest.raises(ValueError):
        parse_iso("yesterday")
    assert ago("2026-05-01T11:57:00", NOW) == "3 min ago"
    assert ago(datetime(2026, 5, 1, 11, 57), NOW) == "3 min ago"
    assert exact("2026-05-01T19:00:00") == "2026-05-01 19:00 UTC"
    assert expiry("2026-05-01T19:00:00", NOW) == "expires in 7 h (2026-05-01 19:00 UTC)"


def test_an_unreadable_time_shows_as_unknown() -> None:
    assert ago("yesterday", NOW) == "-" and exact("yesterday") == "-"
    assert expiry("soon", NOW) == "unreadable (soon)"


def test_status_reads_times_another_writer_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ODE_SIMULATE_PROGRAMS", "0")
    library = load_library(SAMPLE)
    assert Orchestrator(library, Registry(tmp_path), SimulatedEngine(library, tmp_path, run_programs=False)).up(
        "dev", ["identity"]).ok
    db = sqlite3.connect(tmp_path / "registry.db")
    with db:
        db.execute("UPDATE stacks SET started_at = '2026-05-01T11:57:00', finished_at = '2026-05-01T11:58:00'")
        db.execute("UPDATE stacks SET finished_at = 'not a time' WHERE context = 'identity'")
    db.close()
    done = ode(*["status", "--env", "dev", "--contracts", str(SAMPLE),
                                         "--state-dir", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert "Traceback" not in done.output
    assert any(line.startswith("dev.identity ") for line in done.output.splitlines())
