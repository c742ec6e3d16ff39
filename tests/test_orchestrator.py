"""The orchestrator, driven through the simulated engine: order, parallelism, failure isolation, incremental
deploys with early cutoff, locks, reverse destroy, retries, and resuming after a killed process."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ode.contracts import load_library
from ode.engines import StackResult, StackSpec
from ode.engines.simulated import SimulatedEngine
from ode.errors import OdeError, ProtectedEnvironmentError, UsageError
from ode.execution.orchestrator import Orchestrator
from ode.registry import LockedError, RegistryError
from ode.registry.sqlite import SCHEMA_VERSION, Registry

from .cli_runner import ode, process_env
from .conftest import SAMPLE, context, write_library


class Recorder:
    """Wraps an engine; records each call's start and end, and the most stacks running at once."""

    def __init__(self, inner: SimulatedEngine, delay: float = 0.0, rewrite: dict[str, str] | None = None):
        self.inner = inner
        self.name = inner.name
        self.delay = delay
        self.rewrite = rewrite if rewrite is not None else {}
        self.events: list[tuple[str, str, float, float]] = []  # (op, stack, start, end)
        self.running = 0
        self.peak = 0
        self._lock = threading.Lock()

    def _call(self, op: str, spec: StackSpec, fn: Any) -> StackResult:
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        start = time.perf_counter()
        try:
            if self.delay:
                time.sleep(self.delay)
            result: StackResult = fn(spec)
        finally:
            with self._lock:
                self.running -= 1
                self.events.append((op, spec.stack_name, start, time.perf_counter()))
        marker = self.rewrite.get(spec.context)
        if marker and op == "up":
            result.outputs = {k: ({**v, "name": f"{v['name']}-{marker}"} if isinstance(v, dict) and "name" in v
                                  else v) for k, v in result.outputs.items()}
        return result

    def preview(self, spec: StackSpec, progress: Any = None) -> StackResult:
        return self._call("preview", spec, self.inner.preview)

    def up(self, spec: StackSpec, progress: Any = None) -> StackResult:
        return self._call("up", spec, self.inner.up)

    def destroy(self, spec: StackSpec, progress: Any = None) -> StackResult:
        return self._call("destroy", spec, self.inner.destroy)

    def refresh(self, spec: StackSpec, progress: Any = None) -> StackResult:
        return self._call("refresh", spec, self.inner.refresh)

    def outputs(self, spec: StackSpec) -> dict[str, Any]:
        return self.inner.outputs(spec)

    def stacks(self, op: str) -> list[str]:
        return [stack for o, stack, _, _ in self.events if o == op]

    def span(self, op: str, stack: str) -> tuple[float, float]:
        return next((s, e) for o, name, s, e in self.events if o == op and name == stack)


def make(contracts: Path, state: Path, *, parallel: int = 4, delay: float = 0.0, failures: tuple[str, ...] = (),
         transient: dict[str, int] | None = None, rewrite: dict[str, str] | None = None,
         ) -> tuple[Orchestrator, Recorder]:
    library = load_library(contracts)
    engine = Recorder(SimulatedEngine(library, state, failures=failures, transient_failures=transient,
                                      run_programs=False), delay=delay, rewrite=rewrite)
    orchestrator = Orchestrator(library, Registry(state), engine, parallel=parallel, backoff_s=0)  # type: ignore[arg-type]
    return orchestrator, engine


def dag_library(root: Path, edges: dict[int, set[int]]) -> Path:
    """A library of data stores ``c0..cN`` where ``ci`` reads the table of every ``cj`` in ``edges[i]`` (j < i)."""
    docs = []
    for i in sorted(edges):
        consumes = [{"context": f"c{j}", "interface": "t", "access": "read"} for j in sorted(edges[i])]
        docs.append(context(f"c{i}", consumes=consumes))
    return write_library(root, docs)


@st.composite
def dags(draw: st.DrawFn) -> dict[int, set[int]]:
    n = draw(st.integers(min_value=1, max_value=14))
    return {i: set(draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else set() for i in range(n)}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edges=dags(), parallel=st.integers(1, 5))
def test_every_stack_starts_after_its_producers_and_the_limit_holds(tmp_path_factory: Any,
                                                                     edges: dict[int, set[int]],
                                                                     parallel: int) -> None:
    root = tmp_path_factory.mktemp("dag")
    orchestrator, engine = make(dag_library(root / "contracts", edges), root / "state", parallel=parallel,
                                delay=0.002)
    result = orchestrator.up("dev")
    assert result.ok and len(result.stacks) == len(edges)
    for i, producers in edges.items():
        start, _ = engine.span("up", f"dev.c{i}")
        for j in producers:
            assert engine.span("up", f"dev.c{j}")[1] <= start
    assert engine.peak <= parallel


def test_ready_set_does_not_wait_for_a_whole_level(tmp_path: Path) -> None:
    # a (slow) and b (fast) have no producers; c needs only b. Level by level, c would wait for a.
    lib = write_library(tmp_path / "contracts", [
        context("a"), context("b"), context("c", consumes=[{"context": "b", "interface": "t"}])])
    library = load_library(lib)
    inner = SimulatedEngine(library, tmp_path / "state", delays={"a": 0.4}, run_programs=False)
    engine = Recorder(inner)
    Orchestrator(library, Registry(tmp_path / "state"), engine, parallel=4).up("dev")  # type: ignore[arg-type]
    assert engine.span("up", "dev.c")[1] < engine.span("up", "dev.a")[1]


def test_a_failure_skips_exactly_its_descendants_and_a_rerun_finishes_the_rest(tmp_path: Path) -> None:
    orchestrator, engine = make(SAMPLE, tmp_path, failures=("dev.identity",))
    result = orchestrator.up("dev")
    assert not result.ok and result.exit_code == 1
    status = {s.context: s.status for s in result.stacks}
    graph = orchestrator.graph("dev")
    descendants = graph.descendants("identity")
    assert status["identity"] == "failed"
    assert {c for c, s in status.items() if s == "skipped"} == descendants
    assert {c for c, s in status.items() if s == "succeeded"} == set(graph.contexts) - descendants - {"identity"}
    assert "dev.identity" in result.stack("orders").error  # type: ignore[operator]
    assert "injected" in (result.stack("identity").error or "")

    healed, engine2 = make(SAMPLE, tmp_path)
    again = healed.up("dev")
    assert again.ok
    assert sorted(engine2.stacks("up")) == sorted(f"dev.{c}" for c in descendants | {"identity"})
    assert {s.context for s in again.stacks if s.status == "unchanged"} == (
        set(graph.contexts) - descendants - {"identity"})


def test_an_unchanged_rerun_starts_no_engine_run(tmp_path: Path) -> None:
    orchestrator, engine = make(SAMPLE, tmp_path)
    assert orchestrator.up("dev").ok
    engine.events.clear()
    again = orchestrator.up("dev")
    assert again.ok and engine.events == []
    assert {s.status for s in again.stacks} == {"unchanged"}


def test_changed_settings_redeploy_the_context_and_stop_at_unchanged_outputs(sample_library: Path,
                                                                              tmp_path: Path) -> None:
    orchestrator, _ = make(sample_library, tmp_path / "state")
    assert orchestrator.up("dev").ok
    doc = yaml.safe_load((sample_library / "catalog.yaml").read_text())
    doc["settings"]["memory_mb"] = 1024
    (sample_library / "catalog.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    changed, engine = make(sample_library, tmp_path / "state")
    result = changed.up("dev")
    # catalog redeployed; its outputs are the same, so none of its consumers is woken (early cutoff).
    assert engine.stacks("up") == ["dev.catalog"]
    assert result.stack("catalog").reason == "changed: settings"
    assert result.stack("orders").status == "unchanged"


def test_changed_outputs_wake_only_the_consumers_of_that_producer(tmp_path: Path) -> None:
    orchestrator, _ = make(SAMPLE, tmp_path)
    assert orchestrator.up("dev").ok
    # identity now exports different names (as if its tables were replaced): its consumers must redeploy.
    changed, engine = make(SAMPLE, tmp_path, rewrite={"identity": "v2"})
    for ctx in changed.library.contexts.values():
        if ctx.context == "identity":
            object.__setattr__(ctx, "version", "2.0.2")  # its contract changed, so it redeploys
    result = changed.up("dev")
    consumers = set(changed.graph("dev").consumers_of("identity"))
    assert set(engine.stacks("up")) == {"dev.identity"} | {f"dev.{c}" for c in consumers}
    for c in consumers:
        assert result.stack(c).reason == "changed: upstream outputs"
    assert result.stack("catalog").status == "unchanged"


def test_contexts_option_limits_the_run_to_what_they_need(tmp_path: Path) -> None:
    orchestrator, engine = make(SAMPLE, tmp_path)
    result = orchestrator.up("dev", ["payments"])
    assert sorted(s.context for s in result.stacks) == ["identity", "network", "payments", "shared-bus"]
    with pytest.raises(UsageError, match="nope"):
        orchestrator.up("dev", ["nope"])


def test_transient_errors_are_retried(tmp_path: Path) -> None:
    orchestrator, engine = make(SAMPLE, tmp_path, transient={"catalog": 2})
    result = orchestrator.up("dev", ["catalog"])
    assert result.ok and result.stack("catalog").attempts == 3
    orchestrator, engine = make(SAMPLE, tmp_path / "other", transient={"catalog": 5})
    result = orchestrator.up("dev", ["catalog"])
    assert result.stack("catalog").status == "failed" and result.stack("catalog").attempts == 3


def test_outputs_are_checked_against_the_contract(tmp_path: Path) -> None:
    orchestrator, engine = make(SAMPLE, tmp_path)
    real_up = engine.inner.up

    def lossy(spec: StackSpec, progress: Any = None) -> StackResult:
        result = real_up(spec, progress)
        if spec.context == "identity":
            result.outputs = {k: v for k, v in result.outputs.items() if k != "customers-table"}
        return result

    engine.inner.up = lossy  # type: ignore[method-assign]
    result = orchestrator.up("dev", ["orders"])
    assert result.stack("identity").status == "failed"
    assert "customers-table: missing" in (result.stack("identity").error or "")
    assert result.stack("orders").status == "skipped"


def test_destroy_is_reverse_and_protected_environments_refuse(tmp_path: Path) -> None:
    orchestrator, engine = make(SAMPLE, tmp_path, delay=0.002)
    assert orchestrator.up("dev").ok
    result = orchestrator.destroy("dev")
    assert result.ok and {s.status for s in result.stacks} == {"destroyed"}
    graph = orchestrator.graph("dev")
    for c in graph.contexts:
        _, gone = engine.span("destroy", f"dev.{c}")
        for consumer in graph.consumers_of(c):
            assert engine.span("destroy", f"dev.{consumer}")[1] <= engine.span("destroy", f"dev.{c}")[0]
        assert gone
    assert orchestrator.registry.stacks("dev") == []
    with pytest.raises(ProtectedEnvironmentError, match="prod"):
        orchestrator.destroy("prod")


def test_destroying_some_contexts_takes_their_consumers_along(tmp_path: Path) -> None:
    orchestrator, engine = make(SAMPLE, tmp_path)
    assert orchestrator.up("dev").ok
    result = orchestrator.destroy("dev", ["identity"])
    graph = orchestrator.graph("dev")
    assert {s.context for s in result.stacks} == {"identity"} | graph.descendants("identity")
    assert {s.context for s in orchestrator.registry.stacks("dev")} == (
        set(graph.contexts) - graph.descendants("identity") - {"identity"})


def test_the_lock_refuses_a_second_run(tmp_path: Path) -> None:
    orchestrator, engine = make(SAMPLE, tmp_path)
    other = Registry(tmp_path)
    run = other.begin_run("dev", "up", "simulated")  # held by this (live) process
    with pytest.raises(LockedError, match=r"locked by .* pid \d+ \(`up`, since"):
        orchestrator.up("dev")
    assert engine.events == []
    # The holder is alive on this host: --force-unlock must not break its lock (both would deploy at once).
    with pytest.raises(LockedError, match="still running on this host"):
        orchestrator.up("dev", ["catalog"], force_unlock=True)
    assert engine.events == []
    other.end_run(run, "dev", "abandoned")
    assert orchestrator.up("dev", ["catalog"]).ok


def test_a_lock_left_by_a_dead_process_is_broken(tmp_path: Path) -> None:
    orchestrator, _ = make(SAMPLE, tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    db = sqlite3.connect(tmp_path / "registry.db")
    import socket

    db.execute("INSERT INTO locks VALUES ('dev', 'x@y pid 1', ?, ?, 'up', '2026-01-01')",
               (socket.gethostname(), dead.pid))
    db.commit()
    db.close()
    assert orchestrator.up("dev", ["catalog"]).ok


def test_a_newer_registry_is_refused(tmp_path: Path) -> None:
    Registry(tmp_path).close()
    db = sqlite3.connect(tmp_path / "registry.db")
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(RegistryError, match="newer"):
        Registry(tmp_path)


def test_an_unknown_environment_is_one_clear_error(tmp_path: Path) -> None:
    orchestrator, _ = make(SAMPLE, tmp_path)
    with pytest.raises(OdeError, match="unknown environment 'qa'"):
        orchestrator.up("qa")


def test_plan_says_what_changes_and_why(sample_library: Path, tmp_path: Path) -> None:
    orchestrator, engine = make(sample_library, tmp_path / "state")
    first = orchestrator.plan("dev")
    assert [s.stack for s in first.stacks] == [f"dev.{c}" for c in orchestrator.graph("dev").contexts]
    assert {s.action for s in first.stacks} == {"deploy"} and first.stacks[0].reason == "new stack"
    assert engine.stacks("up") == []  # planning deploys nothing
    orchestrator.up("dev")
    doc = yaml.safe_load((sample_library / "catalog.yaml").read_text())
    doc["settings"]["memory_mb"] = 1024
    (sample_library / "catalog.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    later, _ = make(sample_library, tmp_path / "state")
    plan = {s.context: s for s in later.plan("dev").stacks}
    assert plan["catalog"].action == "deploy" and plan["catalog"].reason == "changed: settings"
    assert plan["identity"].action == "unchanged"
    # The preview of catalog shows the same outputs, so its consumers stay as they are.
    assert plan["orders"].action == "unchanged"
    blind = {s.context: s for s in later.plan("dev", preview=False).stacks}
    assert blind["orders"].action == "deploy" and "dev.catalog" in blind["orders"].reason


# -- through the command line: a killed run resumes, Ctrl-C stops cleanly ------------------------------------------


#: What every run here sees: no colour, outputs synthesized from the contracts (no program runs).
ENV = {"NO_COLOR": "1", "ODE_SIMULATE_PROGRAMS": "0"}


def _ode(cwd: Path, *args: str) -> subprocess.Popen[str]:
    """``ode ARGS`` started as a process of its own, to be killed or interrupted."""
    return subprocess.Popen([sys.executable, "-m", "ode.cli", *args], cwd=cwd, env=process_env(ENV), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def _statuses(state: Path) -> dict[str, str]:
    if not (state / "registry.db").exists():
        return {}
    db = sqlite3.connect(state / "registry.db", timeout=10)
    try:
        return dict(db.execute("SELECT context, status FROM stacks WHERE env = 'dev'").fetchall())
    except sqlite3.OperationalError:
        return {}
    finally:
        db.close()


def _wait_for(state: Path, succeeded: int, running: int = 0, timeout: float = 60) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    found: dict[str, str] = {}
    while time.monotonic() < deadline:
        found = _statuses(state)
        values = list(found.values())
        if values.count("succeeded") >= succeeded and values.count("running") >= running:
            return found
        time.sleep(0.02)
    raise AssertionError(f"the run did not get that far: {found}")


@pytest.mark.slow
def test_a_run_killed_with_sigkill_is_resumed_with_nothing_lost_or_done_twice(tmp_path: Path) -> None:
    state = tmp_path / "state"
    args = ("up", "--env", "dev", "--engine", "simulated", "--contracts", str(SAMPLE), "--state-dir", str(state),
            "--parallel", "2", "--simulate-delay", "*=0.3", "--json")
    proc = _ode(tmp_path, *args)
    try:
        _wait_for(state, 3, running=1)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.communicate(timeout=30)
    before = _statuses(state)
    done_before = {c for c, s in before.items() if s == "succeeded"}
    in_flight = {c for c, s in before.items() if s == "running"}
    assert done_before and in_flight
    rerun = ode(*args[:-3], "--json", cwd=tmp_path, env=ENV)
    assert rerun.returncode == 0, rerun.stderr
    result = json.loads(rerun.stdout)
    status = {s["context"]: s for s in result["stacks"]}
    assert {c for c, s in status.items() if s["status"] == "unchanged"} == done_before
    assert {c for c, s in status.items() if s["status"] == "succeeded"} == set(status) - done_before
    for c in in_flight:
        assert status[c]["reason"] == "its last run was interrupted"
    assert set(_statuses(state).values()) == {"succeeded"}


@pytest.mark.slow
def test_ctrl_c_lets_running_stacks_finish_and_the_next_run_resumes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    args = ("up", "--env", "dev", "--engine", "simulated", "--contracts", str(SAMPLE), "--state-dir", str(state),
            "--parallel", "2", "--simulate-delay", "*=0.3", "--json")
    proc = _ode(tmp_path, *args)
    _wait_for(state, 2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    result = json.loads(out)
    assert result["interrupted"] is True
    after = _statuses(state)
    assert "running" not in after.values()  # the running ones finished and were recorded
    skipped = {s["context"] for s in result["stacks"] if s["status"] == "skipped"}
    assert skipped and not skipped & {c for c, s in after.items() if s == "succeeded"}
    rerun = ode(*args[:-3], "--json", cwd=tmp_path, env=ENV)
    assert rerun.returncode == 0, rerun.stderr
    assert {s["context"] for s in json.loads(rerun.stdout)["stacks"] if s["status"] == "succeeded"} == skipped
