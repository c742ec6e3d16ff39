"""Readable status: tables with headers and relative times (plain in CI, rich on a terminal), one output by its
path for scripts, and secret outputs read from the engine, never from the registry."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rich.console import Console

from ode.cli import core as cli
from ode.contracts import load_library
from ode.engines import StackResult, StackSpec
from ode.engines.simulated import SimulatedEngine
from ode.errors import UsageError
from ode.execution.orchestrator import Orchestrator, StackOutcome
from ode.registry import EnvironmentRecord
from ode.registry.sqlite import Registry
from ode.rendering import (
    Table,
    ago,
    environments_table,
    exact,
    expiry,
    fancy,
    moment,
    output_at,
    plain,
    rich_table,
    scalar,
    show,
    span,
    status_table,
)

from .conftest import SAMPLE

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _at(**delta: float) -> str:
    return (NOW + timedelta(**delta)).isoformat()


# -- times ----------------------------------------------------------------------------------------------------------


def test_relative_times_read_as_people_say_them() -> None:
    assert ago(_at(minutes=-3), NOW) == "3 min ago"
    assert ago(_at(seconds=-4), NOW) == "just now"
    assert ago(_at(seconds=-40), NOW) == "40 s ago"
    assert ago(_at(hours=-5, minutes=-10), NOW) == "5 h ago"
    assert ago(_at(days=-3), NOW) == "3 d ago"
    assert ago(_at(minutes=20), NOW) == "in 20 min"
    assert ago(None, NOW) == "-"
    # a deadline carries the exact moment beside the relative one: it stays true once the text is old
    assert expiry(_at(hours=7), NOW) == "expires in 7 h (2026-05-01 19:00 UTC)"
    assert expiry(_at(hours=7, minutes=50), NOW) == "expires in 8 h (2026-05-01 19:50 UTC)"
    assert expiry(_at(minutes=-3), NOW) == "expired 3 min ago (2026-05-01 11:57 UTC)"
    assert expiry(None, NOW) == "never"
    later = (NOW + timedelta(hours=7)).astimezone(timezone(timedelta(hours=2))).isoformat()  # written elsewhere
    assert moment(later, NOW) == "in 7 h (2026-05-01 19:00 UTC)" and exact(later) == "2026-05-01 19:00 UTC"
    assert moment(None, NOW) == "-" and exact(None) == "-"
    assert [span(s) for s in (0, 89, 90, 5399, 5400, 129599, 129600)] == [
        "0 s", "89 s", "2 min", "90 min", "2 h", "36 h", "2 d"]


# -- tables ---------------------------------------------------------------------------------------------------------


def _stacks() -> list[StackOutcome]:
    return [StackOutcome("dev.orders", "orders", "succeeded", _at(minutes=-4), _at(minutes=-3), 12.5),
            StackOutcome("dev.payments", "payments", "failed", _at(hours=-2), _at(hours=-2), 3.25,
                         error="dev.payments: pulumi failed\nthe long detail")]


def test_status_is_a_table_with_headers_and_relative_times() -> None:
    table = status_table(_stacks(), NOW, {"dev.orders": "pulumi", "dev.payments": "pulumi"})
    text = plain(table)
    lines = text.splitlines()
    assert lines[0].split() == ["STACK", "STATUS", "UPDATED", "TOOK", "ENGINE", "ERROR"]
    assert lines[1].split()[:6] == ["dev.orders", "succeeded", "3", "min", "ago", "12"]
    assert "2 h ago" in lines[2] and "3.2 s" in lines[2] and lines[2].endswith("dev.payments: pulumi failed")
    assert "the long detail" not in text  # one line per stack
    # columns line up: every row's status starts where the header's does
    column = lines[0].index("STATUS")
    assert all(line[column:].split()[0] in ("STATUS", "succeeded", "failed") for line in lines)


def test_environment_list_says_when_each_expires() -> None:
    records = [EnvironmentRecord("pr-3", base="dev", ephemeral=True, owner="bob", created_at=_at(minutes=-3),
                                 expires_at=_at(hours=7), contexts=["orders"]),
               EnvironmentRecord("pr-1", base="dev", ephemeral=True, owner="ann", created_at=_at(days=-2),
                                 expires_at=_at(minutes=-30), status="failed")]
    lines = plain(environments_table(records, NOW)).splitlines()
    assert lines[0].split() == ["NAME", "BASE", "OWNER", "CONTEXTS", "STATUS", "CREATED", "EXPIRES"]
    assert lines[1].split() == ["pr-3", "dev", "bob", "orders", "active", "3", "min", "ago", "expires", "in", "7",
                                "h", "(2026-05-01", "19:00", "UTC)"]
    assert lines[2].split()[-10:] == ["2", "d", "ago", "expired", "30", "min", "ago", "(2026-05-01", "11:30", "UTC)"]


def test_rich_on_a_terminal_plain_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    for key in ("CI", "NO_COLOR", "TERM"):
        monkeypatch.delenv(key, raising=False)
    assert fancy(Tty()) and not fancy(io.StringIO())
    monkeypatch.setenv("CI", "true")
    assert not fancy(Tty())  # CI logs get plain text even when the runner fakes a terminal
    monkeypatch.delenv("CI")
    monkeypatch.setenv("NO_COLOR", "1")
    assert not fancy(Tty())

    table = Table(["NAME", "STATUS"], [["dev.orders", "failed"]], styles={1: {"failed": "red"}})
    drawn, flat = io.StringIO(), io.StringIO()
    show(table, drawn, use_rich=True)
    show(table, flat, use_rich=False)
    assert flat.getvalue() == "NAME        STATUS\ndev.orders  failed\n"
    assert "dev.orders" in drawn.getvalue() and "NAME" in drawn.getvalue()
    terminal = io.StringIO()
    Console(file=terminal, force_terminal=True, color_system="standard").print(rich_table(table))
    assert "\x1b[" in terminal.getvalue() and "\x1b[" not in flat.getvalue()  # colour only for people


# -- one output -----------------------------------------------------------------------------------------------------

OUTPUTS = {"orders": {"orders-api": {"url": "https://abc.execute-api.us-east-1.amazonaws.com", "id": "abc"},
                      "creds": "[secret]"},
           "network": {"net": {"private_subnet_ids": ["subnet-1", "subnet-2"]}}}


def test_an_output_by_its_path() -> None:
    assert output_at(OUTPUTS, "orders.orders-api.url", "dev") == "https://abc.execute-api.us-east-1.amazonaws.com"
    assert scalar(output_at(OUTPUTS, "orders.orders-api.url", "dev")).count('"') == 0  # no quotes for scripts
    assert scalar(output_at(OUTPUTS, "network.net.private_subnet_ids", "dev")) == '["subnet-1", "subnet-2"]'
    assert output_at(OUTPUTS, "orders.orders-api", "dev") == OUTPUTS["orders"]["orders-api"]
    for path, words in (("shipping.api.url", ["no deployed context 'shipping'", "network, orders"]),
                        ("orders.orders-apj.url", ["no output 'orders-apj'", "creds, orders-api"]),
                        ("orders.orders-api.uri", ["no field 'uri'", "id, url"]),
                        ("orders", ["CONTEXT.INTERFACE.FIELD"]), ("orders..url", ["CONTEXT.INTERFACE.FIELD"]),
                        ("orders.creds.value", ["is secret", "--show-secrets"])):
        with pytest.raises(UsageError) as info:
            output_at(OUTPUTS, path, "dev")
        assert all(w in str(info.value) for w in words), (path, str(info.value))


# -- through the command --------------------------------------------------------------------------------------------


class SecretSim(SimulatedEngine):
    """identity's ``psp-credentials`` output is secret, as a real secret output is."""

    def _run(self, spec: StackSpec, operation: str, progress: Any) -> StackResult:
        result = super()._run(spec, operation, progress)
        if spec.context == "identity":
            result.secret_outputs = result.secret_outputs | {"psp-credentials"}
        return result


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("state")
    library = load_library(SAMPLE)
    engine = SecretSim(library, state, run_programs=False)
    result = Orchestrator(library, Registry(state), engine).up("dev", ["orders"])
    assert result.ok
    return state


def _ode(state: Path, *args: str) -> Any:
    return CliRunner().invoke(cli.main, [*args, "--contracts", str(SAMPLE), "--state-dir", str(state)])


def test_outputs_prints_one_value_and_names_what_exists(deployed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ODE_SIMULATE_PROGRAMS", "0")
    done = _ode(deployed, "outputs", "--env", "dev", "orders.orders-api.url")
    assert done.exit_code == 0, done.output
    assert done.output.startswith("https://") and done.output.count("\n") == 1
    wrong = _ode(deployed, "outputs", "--env", "dev", "orders.orders-api.address")
    assert wrong.exit_code == 2 and "no field 'address'" in wrong.output and "url" in wrong.output
    assert "Traceback" not in wrong.output


def test_show_secrets_reads_the_engine_never_the_registry(deployed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ODE_SIMULATE_PROGRAMS", "0")
    hidden = _ode(deployed, "outputs", "--env", "dev", "--contexts", "identity", "--json")
    assert json.loads(hidden.output)["outputs"]["identity"]["psp-credentials"] == "[secret]"
    refused = _ode(deployed, "outputs", "--env", "dev", "identity.psp-credentials.arn")
    assert refused.exit_code == 2 and "--show-secrets" in refused.output
    shown = _ode(deployed, "outputs", "--env", "dev", "identity.psp-credentials.arn", "--show-secrets")
    assert shown.exit_code == 0, shown.output
    arn = shown.output.strip()
    assert arn.startswith("arn:aws:secretsmanager:us-east-1:111111111111:secret:")
    db = sqlite3.connect(deployed / "registry.db")
    rows = " ".join(str(r) for r in db.execute("SELECT outputs FROM stacks"))
    db.close()
    assert arn not in rows  # the value came from the engine's state, not from the registry


def test_status_and_env_list_print_tables(deployed: Path) -> None:
    status = _ode(deployed, "status", "--env", "dev")
    assert status.exit_code == 0, status.output
    lines = status.output.splitlines()
    assert lines[0].split()[:3] == ["STACK", "STATUS", "UPDATED"]
    assert any(line.startswith("dev.orders ") and ("ago" in line or "just now" in line) for line in lines[1:])
    assert "\x1b[" not in status.output  # not a terminal: plain text
    listed = _ode(deployed, "env", "list")
    assert listed.exit_code == 0 and "no environments made on demand" in listed.output


def test_a_secret_the_engine_cannot_read_is_one_line(deployed: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ODE_SIMULATE_PROGRAMS", "0")
    state = tmp_path / "state"
    shutil.copytree(deployed, state)
    (state / "simulated" / "dev.identity.json").unlink()  # the stack's state is gone; the registry still knows it
    done = _ode(state, "outputs", "--env", "dev", "identity.psp-credentials.arn", "--show-secrets")
    assert done.exit_code == 1 and "dev.identity" in done.output and "simulated engine" in done.output
    assert "Traceback" not in done.output
