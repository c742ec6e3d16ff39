"""The execution core on its own: the planner decides without running any engine operation and hands out plain
data; every operation's runner tries a transient engine error again (the policy is written once); the executor seam
takes plain-data tasks that could run on another machine; a run that loses its lock in the middle writes nothing
more and ends with exit status 3."""

from __future__ import annotations

import pickle
import sqlite3
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from ode.contracts import load_library
from ode.engines import ConcurrentUpdateError, StackResult, StackSpec
from ode.engines.simulated import SimulatedEngine
from ode.execution.drift import check_drift, heal, refresh
from ode.execution.executor import LocalExecutor, StackTask, run_task
from ode.execution.orchestrator import Orchestrator
from ode.execution.planning import Planner, StackPlan
from ode.registry.errors import LeaseLostError
from ode.registry.sqlite import Registry
from ode.status import PlanAction

from .conftest import SAMPLE

OPERATIONS = ("preview", "up", "destroy", "refresh", "outputs")


class Forbidden:
    """An engine that fails the test when anything is asked of it."""

    name = "simulated"

    def __getattr__(self, operation: str) -> Any:
        if operation in OPERATIONS:
            def called(*args: Any, **kwargs: Any) -> Any:
                raise AssertionError(f"the planner called the engine's {operation}")
            return called
        raise AttributeError(operation)


class Flaky:
    """Wraps an engine: ``operation`` on ``stack`` fails ``times`` times with a transient error (a concurrent
    update), then goes through; every call is counted."""

    def __init__(self, inner: SimulatedEngine, operation: str, stack: str, times: int):
        self.inner, self.operation, self.stack, self.left = inner, operation, stack, times
        self.name = inner.name
        self.calls: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def _call(self, operation: str, spec: StackSpec, run: Any) -> StackResult:
        with self._lock:
            key = (operation, spec.stack_name)
            self.calls[key] = self.calls.get(key, 0) + 1
            fail = operation == self.operation and spec.stack_name == self.stack and self.left > 0
            if fail:
                self.left -= 1
        if fail:
            raise ConcurrentUpdateError(spec.stack_name, f"{operation}: another update is running (test)")
        return run()  # type: ignore[no-any-return]

    def preview(self, spec: StackSpec, progress: Any = None) -> StackResult:
        return self._call("preview", spec, lambda: self.inner.preview(spec, progress))

    def up(self, spec: StackSpec, progress: Any = None) -> StackResult:
        return self._call("up", spec, lambda: self.inner.up(spec, progress))

    def destroy(self, spec: StackSpec, progress: Any = None) -> StackResult:
        return self._call("destroy", spec, lambda: self.inner.destroy(spec, progress))

    def refresh(self, spec: StackSpec, progress: Any = None, *, preview_only: bool = False) -> StackResult:
        operation = "drift" if preview_only else "refresh"
        return self._call(operation, spec, lambda: self.inner.refresh(spec, progress, preview_only=preview_only))

    def outputs(self, spec: StackSpec) -> dict[str, Any]:
        return self.inner.outputs(spec)

    def count(self, operation: str) -> int:
        return self.calls.get((operation, self.stack), 0)


def deployed(state: Path) -> Orchestrator:
    """The sample's dev deployed by the simulated engine into ``state``."""
    library = load_library(SAMPLE)
    orchestrator = Orchestrator(library, Registry(state), SimulatedEngine(library, state, run_programs=False),
                                backoff_s=0)
    assert orchestrator.up("dev").ok
    return orchestrator


# -- the planner -----------------------------------------------------------------------------------------------------


def test_the_planner_runs_no_engine_operation_and_plan_without_preview_neither(tmp_path: Path) -> None:
    library = load_library(SAMPLE)
    registry = Registry(tmp_path)
    planner = Planner(library, registry)  # no way to read an engine's state at all
    first = planner.walk(planner.up_scope("dev"))
    assert [i.context for i in first] == planner.graph("dev").contexts
    assert {i.action for i in first} == {PlanAction.DEPLOY} and first[0].reason == "new stack"
    assert Orchestrator(library, registry, Forbidden()).plan("dev", preview=False).ok  # type: ignore[arg-type]
    registry.close()

    deployed(tmp_path)
    again = Registry(tmp_path)
    quiet = Orchestrator(library, again, Forbidden())  # type: ignore[arg-type]
    plan = quiet.plan("dev")  # everything unchanged: nothing to preview, so no engine call either
    assert {s.action for s in plan.stacks} == {PlanAction.UNCHANGED}
    rehearsal = Planner(library, again, simulated=True)
    decided = rehearsal.walk(rehearsal.up_scope("dev"))
    assert {i.action for i in decided} == {PlanAction.UNCHANGED}
    assert all(i.fingerprint == again.stack("dev", i.context).fingerprint for i in decided)  # type: ignore[union-attr]
    # A real engine's planner takes none of them for deployed: the simulated engine deployed them
    real = Planner(library, again).decide(rehearsal.up_scope("dev"), "network", {})
    assert real.action == PlanAction.DEPLOY and "simulated engine only" in real.reason


def test_plan_and_up_take_the_same_decisions_from_the_planner(sample_library: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    library = load_library(sample_library)
    Orchestrator(library, Registry(state), SimulatedEngine(library, state, run_programs=False)).up("dev")
    doc = yaml.safe_load((sample_library / "catalog.yaml").read_text())
    doc["settings"]["memory_mb"] = 1024
    (sample_library / "catalog.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    library = load_library(sample_library)
    orchestrator = Orchestrator(library, Registry(state), SimulatedEngine(library, state, run_programs=False))
    planned = {s.context: s for s in orchestrator.plan("dev").stacks}
    result = orchestrator.up("dev")
    for outcome in result.stacks:
        step = planned[outcome.context]
        assert (step.action == PlanAction.DEPLOY) == (outcome.status == "succeeded"), outcome.context
        if outcome.status == "succeeded":
            assert outcome.reason == step.reason == "changed: settings"
    assert [s.context for s in result.stacks if s.status == "succeeded"] == ["catalog"]


def test_the_plan_is_plain_data(tmp_path: Path) -> None:
    library = load_library(SAMPLE)
    planner = Planner(library, Registry(tmp_path))
    scope = planner.up_scope("dev", ["payments"])
    item = planner.decide(scope, "network", {})
    assert isinstance(item, StackPlan) and item.spec is not None and item.fingerprint
    assert pickle.loads(pickle.dumps(item)) == item and pickle.loads(pickle.dumps(scope)) == scope
    assert set(asdict(item)) >= {"stack", "action", "reason", "spec", "fingerprint", "parts", "producers"}
    task = StackTask("up", item.spec, run_id=3)
    assert pickle.loads(pickle.dumps(task)) == task


# -- each runner tries a transient error again, once written ---------------------------------------------------------


def _flaky(state: Path, operation: str, times: int, **extra: Any) -> tuple[Orchestrator, Flaky]:
    library = load_library(SAMPLE)
    engine = Flaky(SimulatedEngine(library, state, run_programs=False), operation, "dev.catalog", times)
    return Orchestrator(library, Registry(state), engine, backoff_s=0, retries=1, **extra), engine  # type: ignore[arg-type]


@pytest.mark.parametrize("operation", ["up", "destroy", "preview", "refresh", "drift"])
def test_every_runner_retries_a_transient_error_once(tmp_path: Path, operation: str) -> None:
    if operation != "up":
        deployed(tmp_path)
    orchestrator, engine = _flaky(tmp_path, operation, 1)
    if operation == "preview":
        orchestrator.engine_config = {"touch": "1"}  # every stack deploys again, so the plan previews it
    act = {
        "up": lambda: orchestrator.up("dev", ["catalog"]).stack("catalog"),
        "destroy": lambda: orchestrator.destroy("dev", ["catalog"]).stack("catalog"),
        "preview": lambda: next(s for s in orchestrator.plan("dev").stacks if s.context == "catalog"),
        "refresh": lambda: refresh(orchestrator, "dev", ["catalog"]).stack("catalog"),
        "drift": lambda: next(s for s in check_drift(orchestrator, "dev", ["catalog"]).stacks),
    }[operation]
    done = act()
    assert engine.count(operation) == 2  # failed once, tried again once
    assert getattr(done, "error", None) is None, done
    if operation in ("up", "destroy"):
        assert done.attempts == 2  # type: ignore[union-attr]

    again, engine = _flaky(tmp_path / "twice", operation, 2)
    if operation != "up":
        deployed(tmp_path / "twice")
    if operation == "preview":
        again.engine_config = {"touch": "1"}
    act = {
        "up": lambda: again.up("dev", ["catalog"]).stack("catalog"),
        "destroy": lambda: again.destroy("dev", ["catalog"]).stack("catalog"),
        "preview": lambda: next(s for s in again.plan("dev").stacks if s.context == "catalog"),
        "refresh": lambda: refresh(again, "dev", ["catalog"]).stack("catalog"),
        "drift": lambda: next(s for s in check_drift(again, "dev", ["catalog"]).stacks),
    }[operation]
    failed = act()
    assert engine.count(operation) == 2  # one retry only: the second failure is the stack's error
    assert "another update is running" in (failed.error or "")


def test_a_heal_retries_a_transient_error_once(tmp_path: Path) -> None:
    deployed(tmp_path)
    library = load_library(SAMPLE)
    inner = SimulatedEngine(library, tmp_path, run_programs=False)
    inner.inject_drift("dev.catalog")
    engine = Flaky(inner, "up", "dev.catalog", 1)
    orchestrator = Orchestrator(library, Registry(tmp_path), engine, backoff_s=0, retries=1)  # type: ignore[arg-type]
    report = heal(orchestrator, "dev", ["catalog"])
    assert report.exit_code == 0 and [s.heal for s in report.drifted] == ["healed"]
    assert engine.count("up") == 2 and report.healed is not None
    assert report.healed.stack("catalog").attempts == 2
    assert orchestrator.registry.drift_checks("dev")[0]["heal_run"] is not None  # type: ignore[attr-defined]


# -- the executor seam ---------------------------------------------------------------------------------------------


class Elsewhere:
    """An executor that runs each task as another machine would: the task crosses as bytes, a fresh engine of the
    worker's own runs it in the worker's pool, and the result comes back as bytes. It holds no registry."""

    name = "elsewhere"

    def __init__(self, state: Path):
        self.state = state
        self.pool = ThreadPoolExecutor(2)
        self.tasks: list[StackTask] = []

    def _work(self, payload: bytes) -> bytes:
        task: StackTask = pickle.loads(payload)
        engine = SimulatedEngine(load_library(SAMPLE), self.state, run_programs=False)
        return pickle.dumps(run_task(engine, task))

    def submit(self, task: StackTask, progress: Any = None) -> Future[StackResult]:
        self.tasks.append(task)
        sent = self.pool.submit(self._work, pickle.dumps(task))
        done: Future[StackResult] = Future()
        sent.add_done_callback(lambda f: done.set_result(pickle.loads(f.result())) if f.exception() is None
                               else done.set_exception(f.exception()))  # type: ignore[arg-type]
        return done

    def cancel(self, stack: str) -> bool:
        return False

    def close(self) -> None:
        self.pool.shutdown()


def test_an_executor_gets_plain_tasks_and_the_coordinator_alone_writes_the_registry(tmp_path: Path) -> None:
    library = load_library(SAMPLE)
    worker = Elsewhere(tmp_path / "worker")
    orchestrator = Orchestrator(library, Registry(tmp_path / "coordinator"), Forbidden(),  # type: ignore[arg-type]
                                executor=worker)
    result = orchestrator.up("dev")
    worker.close()
    assert result.ok and {s.status for s in result.stacks} == {"succeeded"}
    assert sorted(t.stack for t in worker.tasks) == sorted(f"dev.{c}" for c in orchestrator.graph("dev").contexts)
    assert {t.operation for t in worker.tasks} == {"up"} and all(t.run_id for t in worker.tasks)
    assert {s.status for s in orchestrator.registry.stacks("dev")} == {"succeeded"}
    assert not (tmp_path / "worker" / "registry.db").exists()  # the worker never opened a registry


def test_the_local_executor_cancels_what_the_engine_can_stop(tmp_path: Path) -> None:
    library = load_library(SAMPLE)
    engine = SimulatedEngine(library, tmp_path, delays={"catalog": 30}, run_programs=False)
    executor = LocalExecutor(engine)
    spec = StackSpec(project="shop", env="dev", context="catalog", contracts_dir=SAMPLE)
    found: list[BaseException | None] = []
    thread = threading.Thread(target=lambda: found.append(executor.submit(StackTask("up", spec)).exception()))
    thread.start()
    while not executor.running():
        time.sleep(0.01)
    assert executor.cancel("dev.catalog") and not executor.cancel("dev.orders")
    thread.join(timeout=20)
    assert not thread.is_alive() and "cancelled" in str(found[0])


# -- a lock lost in the middle of a run ------------------------------------------------------------------------------


def test_a_run_that_loses_its_lock_writes_nothing_more_and_stops(tmp_path: Path) -> None:
    """Runner A holds dev's lock on a registry file two hosts share; while its slow stack runs, its lock is
    broken and taken over (`--force-unlock` from the other host, which took A's host for gone). A's stack then
    ends, and A records nothing of it, starts nothing more, and stops with the successor named."""
    library = load_library(SAMPLE)
    engine = SimulatedEngine(library, tmp_path, delays={"*": 1.5}, run_programs=False)
    a = Orchestrator(library, Registry(tmp_path), engine, parallel=1, backoff_s=0)
    outcome: list[BaseException] = []

    def run_a() -> None:
        try:
            a.up("dev")
        except BaseException as exc:  # noqa: BLE001 - what the test looks at
            outcome.append(exc)

    thread = threading.Thread(target=run_a)
    thread.start()
    b = Registry(tmp_path)
    deadline = time.monotonic() + 30
    while not b.interrupted("dev") and time.monotonic() < deadline:  # A's first stack is running
        time.sleep(0.01)
    (first,) = b.interrupted("dev")
    db = sqlite3.connect(tmp_path / "registry.db")
    db.execute("UPDATE locks SET host = 'runner-a' WHERE env = 'dev'")  # A's lock, as another host's
    db.commit()
    db.close()
    taken = b.begin_run("dev", "up", "pulumi", force_unlock=True)
    b.mark_running("dev", first.context, engine="pulumi", started_at="2026-01-01T00:00:00", run_id=taken)
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], LeaseLostError), outcome
    lost = outcome[0]
    assert lost.exit_code == 3 and lost.successor_run == taken and "\n" not in str(lost)
    assert f"run {taken}" in str(lost) and "lost the lock on environment 'dev'" in str(lost)
    mine = b.stack("dev", first.context)
    assert mine is not None and mine.engine == "pulumi" and mine.status == "running"  # B's, untouched
    assert [s.context for s in b.stacks("dev")] == [first.context]  # A started nothing more
    runs = {r.id: r.status for r in b.runs("dev")}
    assert runs == {lost.run_id: "abandoned", taken: "running"} and lost.run_id < taken
    assert b.lock_holder("dev") is not None
    b.end_run(taken, "dev", "succeeded")
    assert b.lock_holder("dev") is None
