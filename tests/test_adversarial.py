"""Standing adversarial suite: ode used the way a careless user, a crashing machine and a second CI job use it.

Each test plants one defect that was found this way (secret outputs on a rerun, a crashed run, a lock broken under
a live run, races between commands, bad options, surprising behaviour) and checks that it stays fixed.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from ode.clock import FrozenClock, iso, parse_iso
from ode.contracts import load_library
from ode.engines import StackResult, StackSpec
from ode.engines.simulated import SimulatedEngine, synthesize_outputs
from ode.errors import NothingToDeployError, OdeError, ProtectedEnvironmentError, UsageError
from ode.execution import runners
from ode.execution.ephemeral import EphemeralEnvironments
from ode.execution.orchestrator import Orchestrator
from ode.naming import check_env_name
from ode.registry import LockedError
from ode.registry.sqlite import Registry

from .conftest import ROOT, SAMPLE

SCRIPT = ROOT / "scripts" / "ephemeral_env.py"
FAKES = ROOT / "tests" / "fakes"


# -- helpers ------------------------------------------------------------------------------------------------------


class SecretSim(SimulatedEngine):
    """The simulated engine with identity's ``psp-credentials`` output secret, as a real secret output is: its
    value is returned by ``up`` and ``outputs``, and never kept with the public outputs."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.specs: list[StackSpec] = []

    def _run(self, spec: StackSpec, operation: str, progress: Any) -> StackResult:
        result = super()._run(spec, operation, progress)
        self.specs.append(spec)
        if spec.context == "identity":
            result.secret_outputs = result.secret_outputs | {"psp-credentials"}
        return result


def _orchestrator(state: Path, library_root: Path = SAMPLE, **engine: Any) -> Orchestrator:
    library = load_library(library_root)
    return Orchestrator(library, Registry(state), SimulatedEngine(library, state, run_programs=False, **engine),
                        backoff_s=0)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "CI_"))}
    env.update({"NO_COLOR": "1", "ODE_SIMULATE_PROGRAMS": "0", "PYTHONPATH": str(ROOT / "platform"), **extra})
    return env


def ode(cwd: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ode.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env=_env(**extra), timeout=120, stdin=subprocess.DEVNULL)


def script(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True,
                          env=_env(), timeout=120, stdin=subprocess.DEVNULL)


def _clean_error(done: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    for needle in needles:
        assert needle in done.stderr, done.stderr


@pytest.fixture(scope="module")
def dev_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state dir with the sample's dev deployed by the simulated engine (copied per test by ``state``)."""
    root = tmp_path_factory.mktemp("dev")
    done = ode(root, "up", "--env", "dev", "--engine", "simulated", "--contracts", str(SAMPLE), "--state-dir",
               str(root / "state"))
    assert done.returncode == 0, done.stderr
    return root / "state"


@pytest.fixture
def state(tmp_path: Path, dev_state: Path) -> Path:
    dest = tmp_path / "state"
    shutil.copytree(dev_state, dest)
    return dest


def _stack_statuses(state: Path, env: str) -> dict[str, str]:
    db = sqlite3.connect(state / "registry.db", timeout=10)
    try:
        return dict(db.execute("SELECT context, status FROM stacks WHERE env = ?", (env,)).fetchall())
    except sqlite3.OperationalError:  # the tables are not made yet
        return {}
    finally:
        db.close()


# -- 1. secret outputs on a rerun ---------------------------------------------------------------------------------


def test_a_secret_output_does_not_break_the_rerun_of_its_consumers(tmp_path: Path) -> None:
    library = load_library(SAMPLE)
    engine = SecretSim(library, tmp_path, run_programs=False)
    orchestrator = Orchestrator(library, Registry(tmp_path), engine)
    first = orchestrator.up("dev", ["payments"])
    assert first.ok
    secret = first.stack("identity").outputs["psp-credentials"]
    assert "psp-credentials" not in orchestrator.registry.stack("dev", "identity").outputs  # type: ignore[union-attr]
    again = orchestrator.up("dev", ["payments"])
    assert again.ok, [(s.stack, s.error) for s in again.stacks]
    assert again.stack("payments").status == "unchanged"  # same secret value, read back from the engine
    plan = orchestrator.plan("dev", ["payments"], preview=False)
    assert plan.ok and {s.action for s in plan.stacks} == {"unchanged"}, [(s.stack, s.error) for s in plan.stacks]
    # A consumer that redeploys gets the producer's secret value, as secret config.
    engine.specs.clear()
    orchestrator.engine_config = {"touch": "1"}  # new stack config: a new fingerprint for every stack
    assert orchestrator.up("dev", ["payments"]).ok
    payments = next(s for s in engine.specs if s.context == "payments")
    assert payments.upstream["identity"]["psp-credentials"] == secret
    assert ("identity", "psp-credentials", "arn") in payments.secret_upstream


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The recorded stand-in CLI first on PATH, answering with contract-shaped outputs; identity's
    psp-credentials marked secret (its documented $FAKE_PULUMI_OUTPUTS format)."""
    library = load_library(SAMPLE)
    table: dict[str, Any] = {}
    for context in library.contexts:
        spec = StackSpec(project="shop", env="dev", context=context, contracts_dir=SAMPLE)
        table[spec.stack_name] = {"outputs": synthesize_outputs(library, spec),
                                  "secret": ["psp-credentials"] if context == "identity" else []}
    bus = table["dev.shared-bus"]["outputs"]["bus"]
    for entry in table.values():
        for value in entry["outputs"].values():
            if "bus_name" in value:
                value.update(bus_name=bus["name"], bus_arn=bus["arn"])
    (tmp_path / "outputs.json").write_text(json.dumps(table))
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PULUMI_LOG", str(tmp_path / "calls.jsonl"))
    monkeypatch.setenv("FAKE_PULUMI_OUTPUTS", str(tmp_path / "outputs.json"))
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    monkeypatch.delenv("ODE_BACKEND_URL", raising=False)
    return tmp_path


def test_a_secret_output_survives_a_rerun_through_the_pulumi_cli(stand_in: Path) -> None:
    from ode.engines.pulumi import PulumiEngine

    library = load_library(SAMPLE)
    state = stand_in / "state"
    orchestrator = Orchestrator(library, Registry(state), PulumiEngine(library, state), parallel=2)
    assert orchestrator.up("dev", ["payments"]).ok
    again = orchestrator.up("dev", ["payments"])
    assert again.ok, [(s.stack, s.error) for s in again.stacks]
    assert again.stack("payments").status == "unchanged"
    calls = [json.loads(line) for line in (stand_in / "calls.jsonl").read_text().splitlines()]
    reads = [c for c in calls if c["args"][:2] == ["stack", "output"] and "--show-secrets" in c["args"]]
    assert any("dev.identity" in c["args"] for c in reads)  # read back from the engine, not the registry
    secret_value = json.loads((stand_in / "outputs.json").read_text())["dev.identity"]["outputs"][
        "psp-credentials"]["arn"]
    assert secret_value.encode() not in (state / "registry.db").read_bytes()


# -- 3. a crashed run is not a success ----------------------------------------------------------------------------


def test_a_crashed_scheduler_is_recorded_as_failed_and_releases_the_lock(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    orchestrator = _orchestrator(tmp_path)

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("scheduler bug")

    monkeypatch.setattr(runners, "schedule", crash)
    with pytest.raises(RuntimeError):
        orchestrator.up("dev", ["catalog"])
    runs = orchestrator.registry.runs("dev")
    assert [r.status for r in runs] == ["failed"]
    assert orchestrator.registry.lock_holder("dev") is None


def test_work_that_raises_fails_its_stack_not_the_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    orchestrator = _orchestrator(tmp_path)
    real = orchestrator.registry.record_success

    def broken(env: str, context: str, **kwargs: Any) -> None:
        if context == "identity":
            raise OdeError("registry write failed")
        real(env, context, **kwargs)

    monkeypatch.setattr(orchestrator.registry, "record_success", broken)
    result = orchestrator.up("dev", ["payments"])
    assert not result.ok and result.exit_code == 1
    assert result.stack("identity").status == "failed" and "registry write failed" in (
        result.stack("identity").error or "")
    assert result.stack("payments").status == "skipped"
    assert orchestrator.registry.stack("dev", "identity").status == "running"  # type: ignore[union-attr]
    assert orchestrator.registry.runs("dev")[-1].status == "failed"


# -- 4. --force-unlock ----------------------------------------------------------------------------------------------


def test_force_unlock_breaks_only_a_lock_whose_holder_is_not_running_here(tmp_path: Path) -> None:
    orchestrator = _orchestrator(tmp_path)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        db = sqlite3.connect(tmp_path / "registry.db")
        db.execute("INSERT INTO locks VALUES ('dev', 'ci@runner pid x', ?, ?, 'up', '2026-01-01')",
                   (socket.gethostname(), sleeper.pid))
        db.commit()
        with pytest.raises(LockedError, match="still running on this host") as info:
            orchestrator.up("dev", ["catalog"], force_unlock=True)
        assert info.value.exit_code == 3 and "ci@runner pid x" in str(info.value)
        # A lock from another host cannot be checked: --force-unlock is the user's word that it is gone.
        db.execute("UPDATE locks SET host = 'elsewhere'")
        db.commit()
        db.close()
        with pytest.raises(LockedError):
            orchestrator.up("dev", ["catalog"])
        assert orchestrator.up("dev", ["catalog"], force_unlock=True).ok
    finally:
        sleeper.kill()
        sleeper.wait()


# -- 5. the registry never starts over silently ---------------------------------------------------------------------


def test_destroy_with_no_record_of_the_environment_is_an_error(tmp_path: Path) -> None:
    orchestrator = _orchestrator(tmp_path)
    assert orchestrator.registry.created
    with pytest.raises(UsageError, match="no record of environment 'dev'"):
        orchestrator.destroy("dev")
    assert not Registry(tmp_path).created


# -- 6. a base environment and the environments that reuse it -------------------------------------------------------


def test_destroying_a_base_refuses_while_ephemeral_environments_reuse_it(tmp_path: Path) -> None:
    orchestrator = _orchestrator(tmp_path)
    assert orchestrator.up("dev").ok
    envs = EphemeralEnvironments(orchestrator.library, orchestrator.registry, orchestrator)
    envs.create("pr-7", contexts=["orders"], reuse=["network", "shared-bus"])
    envs.create("pr-8", contexts=["catalog"], reuse=[])
    with pytest.raises(UsageError, match=r"pr-7 \(reuses network, shared-bus\)") as info:
        orchestrator.destroy("dev")
    assert "pr-8" not in str(info.value)  # it reuses nothing of dev
    assert len(orchestrator.registry.stacks("dev")) == 10  # nothing destroyed
    with pytest.raises(UsageError, match="pr-7"):
        orchestrator.destroy("dev", ["network"])
    assert orchestrator.destroy("dev", ["analytics"]).ok  # nothing pr-7 reuses goes
    result = orchestrator.destroy("dev", with_dependents=True)
    assert result.ok
    assert orchestrator.registry.stacks("pr-7") == [] and orchestrator.registry.stacks("dev") == []
    assert orchestrator.registry.environment("pr-7").status == "destroyed"  # type: ignore[union-attr]
    assert orchestrator.registry.environment("pr-8").status == "active"  # type: ignore[union-attr]
    # `ode destroy --env pr-8` (not `ode env destroy`) also leaves the record saying what happened.
    assert orchestrator.destroy("pr-8").ok
    assert orchestrator.registry.environment("pr-8").status == "destroyed"  # type: ignore[union-attr]


def test_destroy_of_a_base_through_the_cli(tmp_path: Path, state: Path) -> None:
    common = ("--engine", "simulated", "--contracts", str(SAMPLE), "--state-dir", str(state))
    assert ode(tmp_path, "env", "create", "pr-1", "--contexts", "catalog", *common).returncode == 0  # reuses 2
    refused = ode(tmp_path, "destroy", "--env", "dev", "--yes", *common)
    _clean_error(refused, 2, "pr-1 (reuses network, shared-bus)", "--with-ephemeral")
    assert len(_stack_statuses(state, "dev")) == 10
    done = ode(tmp_path, "destroy", "--env", "dev", "--yes", "--with-ephemeral", *common)
    assert done.returncode == 0, done.stderr
    assert _stack_statuses(state, "dev") == {} and _stack_statuses(state, "pr-1") == {}


# -- 8. races between commands ---------------------------------------------------------------------------------------


def test_env_create_takes_the_lock_before_it_writes_anything(tmp_path: Path) -> None:
    orchestrator = _orchestrator(tmp_path)
    assert orchestrator.up("dev", ["network", "shared-bus"]).ok
    clock = FrozenClock()
    envs = EphemeralEnvironments(orchestrator.library, orchestrator.registry, orchestrator, clock=clock)
    envs.create("pr-1", contexts=["catalog"], ttl="2h")
    before = orchestrator.registry.environment("pr-1")
    other = Registry(tmp_path)
    run = other.begin_run("pr-1", "up", "simulated")  # another run holds pr-1
    with pytest.raises(LockedError):
        envs.create("pr-1", contexts=["orders"], ttl="1h")
    assert orchestrator.registry.environment("pr-1") == before  # not failed, contexts and expiry unchanged
    other.end_run(run, "pr-1", "succeeded")


def test_a_failed_create_of_a_live_environment_keeps_its_record(tmp_path: Path) -> None:
    orchestrator = _orchestrator(tmp_path)
    assert orchestrator.up("dev", ["network", "shared-bus"]).ok
    envs = EphemeralEnvironments(orchestrator.library, orchestrator.registry, orchestrator)
    envs.create("pr-2", contexts=["catalog"], reuse=["network", "shared-bus"])
    before = orchestrator.registry.environment("pr-2")
    orchestrator.registry.forget_stack("dev", "network")  # a reused producer gone from the base: up cannot start
    with pytest.raises(OdeError, match="dev.network"):
        envs.create("pr-2", contexts=["orders"], reuse=["network", "shared-bus"])
    assert orchestrator.registry.environment("pr-2") == before


def test_gc_rechecks_expiry_under_the_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    orchestrator = _orchestrator(tmp_path)
    assert orchestrator.up("dev", ["network", "shared-bus"]).ok
    clock = FrozenClock(parse_iso(iso(FrozenClock().now)))
    envs = EphemeralEnvironments(orchestrator.library, orchestrator.registry, orchestrator, clock=clock)
    envs.create("pr-3", contexts=["catalog"], ttl="1h")
    clock.advance(2 * 3600)
    registry = orchestrator.registry
    real = registry.begin_run

    def extended_meanwhile(env: str, command: str, engine: str, **kwargs: Any) -> int:
        if env == "pr-3" and command == "env destroy":  # a concurrent `env create --ttl 1h` got there first
            record = registry.environment("pr-3")
            assert record is not None
            registry.put_environment(replace(record, expires_at=iso(clock() + timedelta(hours=1))))
        return real(env, command, engine, **kwargs)

    monkeypatch.setattr(registry, "begin_run", extended_meanwhile)
    report = envs.gc()
    assert report.ok and report.destroyed == []
    assert [r.name for r in report.kept] == ["pr-3"]
    assert registry.stacks("pr-3") and registry.environment("pr-3").status == "active"  # type: ignore[union-attr]


def test_gc_leaves_an_environment_another_run_holds(tmp_path: Path) -> None:
    orchestrator = _orchestrator(tmp_path)
    clock = FrozenClock()
    envs = EphemeralEnvironments(orchestrator.library, orchestrator.registry, orchestrator, clock=clock)
    envs.create("pr-4", contexts=["catalog"], ttl="1h", reuse=[])
    clock.advance(7200)
    other = Registry(tmp_path)
    run = other.begin_run("pr-4", "env create", "simulated")
    report = envs.gc()
    assert report.destroyed == [] and [r.name for r, _ in report.busy] == ["pr-4"]
    other.end_run(run, "pr-4", "succeeded")
    assert [r.name for r, _ in envs.gc().destroyed] == ["pr-4"]


def test_extend_waits_for_no_one_and_refuses_while_a_destroy_holds_the_lock(tmp_path: Path) -> None:
    orchestrator = _orchestrator(tmp_path)
    envs = EphemeralEnvironments(orchestrator.library, orchestrator.registry, orchestrator)
    envs.create("pr-5", contexts=["catalog"], ttl="1h", reuse=[])
    other = Registry(tmp_path)
    run = other.begin_run("pr-5", "env destroy", "simulated")
    with pytest.raises(LockedError):
        envs.extend("pr-5", "2h")
    other.end_run(run, "pr-5", "succeeded")
    assert envs.extend("pr-5", "2h").expires_at


def test_destroying_an_environment_twice_is_fine(tmp_path: Path, state: Path) -> None:
    common = ("--engine", "simulated", "--contracts", str(SAMPLE), "--state-dir", str(state))
    assert ode(tmp_path, "env", "create", "pr-12", "--contexts", "catalog", *common).returncode == 0
    first = ode(tmp_path, "env", "destroy", "pr-12", *common)
    assert first.returncode == 0, first.stderr
    again = script(tmp_path, "down", "--name", "pr-12", *common)  # a second `down` of a closed pull request
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["stacks"] == []
    said = ode(tmp_path, "env", "destroy", "pr-12", *common)
    assert said.returncode == 0 and "destroyed already" in said.stderr


def test_racing_processes_create_one_passphrase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ode.engines.pulumi import PulumiEngine

    # Every racer sees no file yet (the window between the check and the create), as three processes at once do.
    monkeypatch.setattr(Path, "exists", lambda self: False)
    fake = SimpleNamespace(state_dir=tmp_path)
    found: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def racer() -> None:
        barrier.wait()
        try:
            found.append(PulumiEngine._stored_passphrase(fake))  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=racer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [] and len(found) == 3 and len(set(found)) == 1 and found[0]
    assert (tmp_path / "passphrase").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["passphrase"]


# -- bad input: one clear line, the documented exit status ---------------------------------------------------------


def test_an_environment_name_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(UsageError) as info:
        check_env_name("pr-1\n")
    assert "env_name_for_branch" not in str(info.value)  # speaks of what a user can run, not of Python functions
    assert check_env_name("pr-1") == "pr-1"


@pytest.mark.parametrize("args, needle", [
    (("up", "--env", "dev", "--simulate-failure", "nope"), "--simulate-failure 'nope'"),
    (("up", "--env", "dev", "--simulate-delay", "catalog=nan"), "--simulate-delay 'catalog=nan'"),
    (("up", "--env", "dev", "--simulate-delay", "catalog=-5"), "--simulate-delay 'catalog=-5'"),
    (("up", "--env", "dev", "--simulate-delay", "ghost=1"), "no context 'ghost'"),
    (("up", "--env", "dev", "--contexts", ","), "--contexts ','"),
    (("status", "--env", "nope"), "unknown environment 'nope'"),
    (("outputs", "--env", "nope"), "unknown environment 'nope'"),
    (("env", "create", "pr-9", "--ttl", "3000000d"), "--ttl"),
    (("env", "create", "pr-9\n"), "cannot name an environment"),
    (("env", "create", "dev"), "long-lived"),
    (("env", "destroy", "nosuch"), "nosuch"),
    (("destroy", "--env", "dev"), "--yes"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, state: Path, args: tuple[str, ...], needle: str) -> None:
    engine = ("--engine", "simulated") if args[0] in ("up", "env", "destroy") and args[:2] != ("env", "list") else ()
    done = ode(tmp_path, *args, *(engine if args[:2] != ("env", "extend") else ()), "--contracts", str(SAMPLE),
               "--state-dir", str(state))
    _clean_error(done, 2, needle)
    assert len([line for line in done.stderr.splitlines() if line.startswith("error:")]) == 1
    assert set(_stack_statuses(state, "dev").values()) == {"succeeded"} and len(_stack_statuses(state, "dev")) == 10


def test_a_huge_ttl_is_a_usage_error_everywhere(tmp_path: Path, state: Path) -> None:
    envs = tmp_path / "contracts"
    shutil.copytree(SAMPLE, envs)
    text = (envs / "environments.yaml").read_text()
    (envs / "environments.yaml").write_text(text.replace("max_ttl: 72h", "max_ttl: 3650d"))
    done = ode(tmp_path, "env", "create", "pr-9", "--ttl", "3000000d", "--engine", "simulated", "--contracts",
               str(envs), "--state-dir", str(state))
    _clean_error(done, 2, "--ttl", "3000000d", "longer than")
    assert ode(tmp_path, "env", "create", "pr-9", "--contexts", "catalog", "--engine", "simulated", "--contracts",
               str(envs), "--state-dir", str(state)).returncode == 0
    extend = ode(tmp_path, "env", "extend", "pr-9", "--ttl", "3000000d", "--contracts", str(envs), "--state-dir",
                 str(state))
    _clean_error(extend, 2, "3000000d", "longer than")
    ci = script(tmp_path, "up", "--name", "pr-10", "--contexts", "catalog", "--ttl", "3000000d", "--engine",
                "simulated", "--contracts", str(envs), "--state-dir", str(state))
    _clean_error(ci, 2, "3000000d", "longer than")


def test_exit_statuses_are_the_same_for_ode_and_the_ci_script(tmp_path: Path, state: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(SAMPLE, broken)
    (broken / "orders.yaml").write_text("context: orders\nowner: x\n")
    common = ("--contracts", str(broken), "--state-dir", str(state))
    _clean_error(ode(tmp_path, "up", "--env", "dev", "--engine", "simulated", *common), 2, "orders.yaml")
    _clean_error(script(tmp_path, "up", "--name", "pr-1", "--engine", "simulated", *common), 2, "orders.yaml")
    ok = ("--contracts", str(SAMPLE), "--state-dir", str(state))
    _clean_error(script(tmp_path, "down", "--name", "dev", "--engine", "simulated", *ok), 2, "long-lived")
    failed = ode(tmp_path, "up", "--env", "stage", "--contexts", "catalog", "--engine", "simulated",
                 "--simulate-failure", "catalog", *ok)
    assert failed.returncode == 1
    other = Registry(state)
    run = other.begin_run("pr-1", "up", "simulated")
    try:
        # the holder (this test's process) is alive: 3 for both, and --force-unlock does not change that
        _clean_error(ode(tmp_path, "env", "create", "pr-1", "--contexts", "catalog", "--engine", "simulated",
                         "--force-unlock", *ok), 3, "locked")
        _clean_error(script(tmp_path, "up", "--name", "pr-1", "--contexts", "catalog", "--engine", "simulated",
                            *ok), 3, "locked")
    finally:
        other.end_run(run, "pr-1", "abandoned")


# -- behaviour a user would expect ----------------------------------------------------------------------------------


def test_destroy_asks_on_a_terminal_and_says_what_it_destroys(tmp_path: Path, state: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from ode.cli import core as cli

    help_text = CliRunner().invoke(cli.main, ["destroy", "--help"]).output
    assert "consumes" in help_text and "--yes" in help_text
    monkeypatch.setattr(cli, "interactive", lambda: True)
    monkeypatch.setenv("ODE_SIMULATE_PROGRAMS", "0")
    args = ["destroy", "--env", "dev", "--contexts", "identity", "--engine", "simulated", "--contracts", str(SAMPLE),
            "--state-dir", str(state)]
    declined = CliRunner().invoke(cli.main, args, input="n\n")
    assert declined.exit_code == 1 and "Destroy these" in declined.output
    assert "dev.identity" in declined.output and "asked for" in declined.output and "consumes dev.identity" in \
        declined.output
    assert len(_stack_statuses(state, "dev")) == 10
    accepted = CliRunner().invoke(cli.main, args, input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert "identity" not in _stack_statuses(state, "dev")
    done = ode(tmp_path, "destroy", "--env", "dev", "--yes", "--engine", "simulated", "--contracts", str(SAMPLE),
               "--state-dir", str(state))
    assert done.returncode == 0 and _stack_statuses(state, "dev") == {}


def test_rerunning_env_create_keeps_an_extended_ttl(tmp_path: Path) -> None:
    orchestrator = _orchestrator(tmp_path)
    clock = FrozenClock()
    envs = EphemeralEnvironments(orchestrator.library, orchestrator.registry, orchestrator, clock=clock)
    envs.create("pr-6", contexts=["catalog"], ttl="2h", reuse=[])
    extended = envs.extend("pr-6", "3d")
    clock.advance(60)
    again, _ = envs.create("pr-6", contexts=["identity"], reuse=[])  # the default ttl, 8h, is shorter than what was set
    assert again.expires_at == extended.expires_at
    assert again.contexts == ["catalog", "identity"]
    clock.advance(3 * 86400)
    later, _ = envs.create("pr-6", ttl="1h", reuse=[])  # past the old expiry: now + ttl
    assert later.expires_at == iso(clock() + timedelta(hours=1))


def test_up_on_an_ephemeral_environment_keeps_its_recorded_contexts(tmp_path: Path, state: Path) -> None:
    common = ("--engine", "simulated", "--contracts", str(SAMPLE), "--state-dir", str(state))
    assert ode(tmp_path, "env", "create", "pr-1", "--contexts", "catalog", *common).returncode == 0
    done = ode(tmp_path, "up", "--env", "pr-1", "--json", *common)
    assert done.returncode == 0, done.stderr
    assert sorted(s["context"] for s in json.loads(done.stdout)["stacks"]) == ["catalog"]
    assert sorted(_stack_statuses(state, "pr-1")) == ["catalog"]
    grown = ode(tmp_path, "up", "--env", "pr-1", "--contexts", "identity", *common)
    assert grown.returncode == 0, grown.stderr
    listed = json.loads(ode(tmp_path, "env", "list", "--json", *common[2:]).stdout)["environments"]
    assert listed[0]["contexts"] == ["catalog", "identity"]


def test_env_create_of_only_reused_contexts_says_so(tmp_path: Path, state: Path) -> None:
    orchestrator = Orchestrator(load_library(SAMPLE), Registry(state),
                                SimulatedEngine(load_library(SAMPLE), state, run_programs=False))
    envs = EphemeralEnvironments(orchestrator.library, orchestrator.registry, orchestrator)
    with pytest.raises(NothingToDeployError, match="network is reused from dev"):
        envs.create("pr-11", contexts=["network"], reuse=["network", "shared-bus"])
    assert orchestrator.registry.environment("pr-11") is None
    done = ode(tmp_path, "env", "create", "pr-11", "--contexts", "network,shared-bus", "--engine", "simulated",
               "--contracts", str(SAMPLE), "--state-dir", str(state))
    _clean_error(done, 2, "are all reused from dev")


def test_stacks_of_a_deleted_context_are_reported_and_destroyable(tmp_path: Path, state: Path) -> None:
    library = tmp_path / "contracts"
    shutil.copytree(SAMPLE, library)
    (library / "storefront.yaml").unlink()  # nothing consumes storefront
    common = ("--engine", "simulated", "--contracts", str(library), "--state-dir", str(state))
    plan = ode(tmp_path, "plan", "--env", "dev", "--no-preview", "--json", *common)
    assert plan.returncode == 0, plan.stderr
    planned = {s["context"]: s for s in json.loads(plan.stdout)["stacks"]}
    assert planned["storefront"]["action"] == "orphaned" and "no longer in the library" in planned["storefront"][
        "reason"]
    up = ode(tmp_path, "up", "--env", "dev", "--json", *common)
    assert up.returncode == 0, up.stderr
    assert {s["context"]: s["status"] for s in json.loads(up.stdout)["stacks"]}["storefront"] == "orphaned"
    gone = ode(tmp_path, "destroy", "--env", "dev", "--contexts", "storefront", "--yes", "--json", *common)
    assert gone.returncode == 0, gone.stderr
    assert "storefront" not in _stack_statuses(state, "dev")


def test_a_broken_unrelated_contract_does_not_block_status_env_list_or_gc(tmp_path: Path, state: Path) -> None:
    library = tmp_path / "contracts"
    shutil.copytree(SAMPLE, library)
    common = ("--contracts", str(library), "--state-dir", str(state))
    assert ode(tmp_path, "env", "create", "pr-1", "--contexts", "catalog", "--ttl", "1h", "--engine", "simulated",
               *common).returncode == 0
    (library / "reporting.yaml").write_text("context: reporting\nowner: [oops\n")
    status = ode(tmp_path, "status", "--env", "dev", *common)
    assert status.returncode == 0, status.stderr
    assert "warning:" in status.stderr and "reporting.yaml" in status.stderr and "dev.catalog" in status.stdout
    listed = ode(tmp_path, "env", "list", *common)
    assert listed.returncode == 0 and "pr-1" in listed.stdout
    db = sqlite3.connect(state / "registry.db")
    db.execute("UPDATE environments SET expires_at = '2000-01-01T00:00:00.000000+00:00' WHERE name = 'pr-1'")
    db.commit()
    db.close()
    gc = ode(tmp_path, "gc", "--engine", "simulated", *common)
    assert gc.returncode == 0, gc.stderr
    assert "destroyed pr-1" in gc.stdout and _stack_statuses(state, "pr-1") == {}


@pytest.mark.slow
def test_sigterm_is_handled_like_ctrl_c(tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc = subprocess.Popen([sys.executable, "-m", "ode.cli", "up", "--env", "dev", "--engine", "simulated",
                             "--contracts", str(SAMPLE), "--state-dir", str(state), "--parallel", "2",
                             "--simulate-delay", "*=0.3", "--json"], env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (state / "registry.db").exists() and list(_stack_statuses(state, "dev").values()).count("succeeded") >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert json.loads(out)["interrupted"] is True and "Traceback" not in err
    assert "running" not in _stack_statuses(state, "dev").values()
    assert Registry(state).lock_holder("dev") is None


_GUARDED = """
import subprocess, sys, time
sys.path.insert(0, sys.argv[1])
sleeper = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(120)"]
before = subprocess.Popen(sleeper)  # started before the guard: not ode's to stop
from ode.cli.process_guard import guard_children
assert guard_children(grace_s=1.0)
child = subprocess.Popen(sleeper)  # ignores SIGINT, as a stuck pulumi might: SIGKILL after the grace period
grandchild = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                               "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
                               "print(p.pid, flush=True); time.sleep(120)"], stdout=subprocess.PIPE, text=True)
print(before.pid, child.pid, grandchild.stdout.readline().strip(), flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def _kill(*pids: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the guard uses Linux's parent-death signal")
def test_children_do_not_outlive_a_kill_9(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _GUARDED, str(ROOT / "platform")], stdout=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL)
    before, child, grandchild = (int(x) for x in proc.stdout.readline().split())  # type: ignore[union-attr]
    try:
        assert _alive(before) and _alive(child) and _alive(grandchild)
        proc.kill()  # SIGKILL: no handler, no atexit runs
        proc.wait(10)
        deadline = time.monotonic() + 30  # bounded wait for the watcher
        while (_alive(child) or _alive(grandchild)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child) and not _alive(grandchild)  # reparented or not, what ode started is gone
        assert _alive(before)  # and nothing else was touched
    finally:
        _kill(before, child, grandchild)


_NORMAL_EXIT = """
import subprocess, sys
sys.path.insert(0, sys.argv[1])
from ode.cli.process_guard import guard_children
assert guard_children(grace_s=1.0)
child = subprocess.Popen([sys.executable, "-c", "import pathlib, signal, sys, time; "
                          "signal.signal(signal.SIGINT, lambda *a: pathlib.Path(sys.argv[1]).write_text('sigint')); "
                          "time.sleep(3)", sys.argv[2]])
print(child.pid, flush=True)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the guard uses Linux's parent-death signal")
def test_a_normal_exit_does_not_signal_anyone(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    done = subprocess.run([sys.executable, "-c", _NORMAL_EXIT, str(ROOT / "platform"), str(marker)], timeout=60,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    child = int(done.stdout.strip())
    deadline = time.monotonic() + 30
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not marker.exists()  # the watcher stood down on a normal exit


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["pr-1\n", " pr-1", "a" * 33, "x=nan", "x=-5", "x=inf", "x=1e400", ",", " , ", "*=0", "a=", "=1", "3000000d",
     "9999999999d", "0s", "-1h", "1.5h", "\x00", "８h"]))
def test_option_parsers_accept_or_refuse_cleanly(text: str) -> None:
    """Whatever a user types, an option is either taken (and then well-formed) or refused with a UsageError:
    never another exception, never a value that fails later."""
    from ode.cli.core import split_names
    from ode.workspace import parse_delays as _delays

    try:
        name = check_env_name(text)
        assert re.fullmatch(r"[a-z][a-z0-9-]{0,31}", name)
    except UsageError:
        pass
    try:
        delays = _delays((text,))
        assert all(math.isfinite(v) and v >= 0 for v in delays.values())
    except UsageError:
        pass
    try:
        names = split_names(text)
        assert names and all(n and n == n.strip() and "," not in n for n in names)
    except UsageError:
        pass
    for max_ttl in ("72h", None, "9999999999d"):  # the sample's limit, none, and one past any calendar
        policy = SimpleNamespace(ttl="8h", max_ttl=max_ttl)
        library = SimpleNamespace(environments=SimpleNamespace(ephemeral=policy))
        envs = EphemeralEnvironments(library, None, None)  # type: ignore[arg-type]
        try:
            assert envs._policy_ttl(text) > 0
        except UsageError:
            pass


def test_the_simulated_engine_refuses_faults_that_cannot_happen(tmp_path: Path) -> None:
    library = load_library(SAMPLE)
    for delays in ({"catalog": float("nan")}, {"catalog": -5.0}, {"*": float("inf")}):
        with pytest.raises(UsageError, match="catalog|\\*"):
            SimulatedEngine(library, tmp_path, delays=delays)
    with pytest.raises(UsageError, match="transient"):
        SimulatedEngine(library, tmp_path, transient_failures={"catalog": -1})


def test_protected_environment_is_a_usage_mistake() -> None:
    assert ProtectedEnvironmentError("x").exit_code == 2
