"""Standing guard: the registry fails, one write at a time, under every command that writes to it.

Each test runs an operation once cleanly to count the registry's writes, then once per write with exactly that
write failing (as a full disk or a read-only file would make it fail), and checks after each:

- what escapes is an :class:`OdeError` (one line for the user), never an SQLite error or a traceback;
- nothing is recorded as succeeded that did not succeed (a stack recorded ``succeeded`` was deployed by the engine,
  and a run recorded ``succeeded`` deployed every one of its stacks);
- the environment's lock is released;
- once the registry works again, the same command finishes the job.

It also covers the registry files a user can break: empty, corrupt, hand-edited, under a file, on a full disk.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ode.clock import FrozenClock
from ode.contracts import load_library
from ode.engines import StackResult, StackSpec
from ode.engines.simulated import SimulatedEngine
from ode.errors import OdeError
from ode.execution.ephemeral import EphemeralEnvironments
from ode.execution.orchestrator import Orchestrator
from ode.registry import RegistryError
from ode.registry.sqlite import Registry

from .cli_runner import Ran
from .cli_runner import ode as run_ode
from .conftest import SAMPLE

_WRITES = ("INSERT", "UPDATE", "DELETE", "COMMIT")


class FaultyDb:
    """Stands in for the registry's SQLite connection: the ``fail_at``-th write statement (1-based) raises
    ``error``; with ``sticky``, every write from then on does (a disk that stays full)."""

    def __init__(self, db: sqlite3.Connection, fail_at: int | None, error: str = "database or disk is full",
                 sticky: bool = False):
        self.db = db
        self.fail_at = fail_at
        self.error = error
        self.sticky = sticky
        self.writes = 0
        self.failed = 0

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        if sql.lstrip().split(None, 1)[0].upper() in _WRITES:
            self.writes += 1
            if self.fail_at is not None and (self.writes == self.fail_at or (self.sticky and
                                                                             self.writes > self.fail_at)):
                self.failed += 1
                raise sqlite3.OperationalError(self.error)
        return self.db.execute(sql, params)

    def close(self) -> None:
        self.db.close()


class Ledger:
    """An engine wrapper that remembers which stacks the engine really deployed and destroyed."""

    def __init__(self, inner: SimulatedEngine):
        self.inner = inner
        self.name = inner.name
        self.deployed: set[str] = set()
        self.destroyed: set[str] = set()
        self._lock = threading.Lock()

    def preview(self, spec: StackSpec, progress: Any = None) -> StackResult:
        return self.inner.preview(spec, progress)

    def up(self, spec: StackSpec, progress: Any = None) -> StackResult:
        result = self.inner.up(spec, progress)
        with self._lock:
            self.deployed.add(spec.stack_name)
            self.destroyed.discard(spec.stack_name)
        return result

    def destroy(self, spec: StackSpec, progress: Any = None) -> StackResult:
        result = self.inner.destroy(spec, progress)
        with self._lock:
            self.destroyed.add(spec.stack_name)
            self.deployed.discard(spec.stack_name)
        return result

    def refresh(self, spec: StackSpec, progress: Any = None) -> StackResult:
        return self.inner.refresh(spec, progress)

    def outputs(self, spec: StackSpec) -> dict[str, Any]:
        return self.inner.outputs(spec)


def _open(state: Path) -> tuple[Orchestrator, Registry, Ledger]:
    library = load_library(SAMPLE)
    registry = Registry(state)
    engine = Ledger(SimulatedEngine(library, state, run_programs=False))
    orchestrator = Orchestrator(library, registry, engine, parallel=2, backoff_s=0)  # type: ignore[arg-type]
    return orchestrator, registry, engine


def _check_consistent(registry: Registry, engine: Ledger, env: str, result: Any, after_run: int = 0) -> None:
    assert registry.lock_holder(env) is None, "the lock was left behind"
    for stack in registry.stacks(env):
        if stack.status == "succeeded":
            assert stack.stack in engine.deployed, f"{stack.stack} recorded as succeeded but never deployed"
            assert stack.fingerprint
    for run in registry.runs(env):
        if run.id > after_run and run.status == "succeeded":
            assert result is not None and result.ok, f"run {run.id} recorded as succeeded but it did not succeed"
    if result is not None:
        recorded = {s.context: s.status for s in registry.stacks(env)}
        for outcome in result.stacks:
            if outcome.status == "succeeded":
                assert recorded.get(outcome.context) == "succeeded", f"{outcome.stack} reported but not recorded"


def _count_writes(state: Path, action: Callable[[Orchestrator], Any], prepare: Callable[[Orchestrator], Any]
                  ) -> int:
    orchestrator, registry, _ = _open(state)
    prepare(orchestrator)
    counter = FaultyDb(registry._db, None)
    registry._db = counter  # type: ignore[assignment]
    action(orchestrator)
    registry._db = counter.db
    registry.close()
    return counter.writes


def _each_write_fails(tmp_path: Path, env: str, action: Callable[[Orchestrator], Any],
                      prepare: Callable[[Orchestrator], Any] = lambda o: None) -> int:
    total = _count_writes(tmp_path / "count", action, prepare)
    assert total > 5
    for n in range(1, total + 1):
        state = tmp_path / f"fail-{n}"
        orchestrator, registry, engine = _open(state)
        prepare(orchestrator)
        before = max((r.id for r in registry.runs(env)), default=0)
        faulty = FaultyDb(registry._db, n)
        registry._db = faulty  # type: ignore[assignment]
        result = None
        try:
            result = action(orchestrator)
        except OdeError as exc:
            assert "\n" not in str(exc).strip() or "Traceback" not in str(exc)
        finally:
            registry._db = faulty.db
        assert faulty.failed == 1
        _check_consistent(registry, engine, env, result, before)
        if result is not None and faulty.failed:
            assert not result.ok or result.stacks == [] or all(
                s.status in ("succeeded", "unchanged", "destroyed") for s in result.stacks)
        healed = action(orchestrator)  # the registry works again: the same command finishes the job
        assert healed.ok, [(s.stack, s.status, s.error) for s in healed.stacks]
        _check_consistent(registry, engine, env, healed, before)
        registry.close()
    return total


def test_every_write_of_up_can_fail_without_a_false_success_or_a_stuck_lock(tmp_path: Path) -> None:
    total = _each_write_fails(tmp_path, "dev", lambda o: o.up("dev", ["payments"]))
    assert total >= 10  # begin, environment, 4 x (running, success), end


def test_every_write_of_destroy_can_fail_the_same_way(tmp_path: Path) -> None:
    def destroy(o: Orchestrator) -> Any:
        if not o.registry.knows("dev") or not o.registry.stacks("dev"):
            return o.status("dev")  # destroyed already: nothing left to do
        return o.destroy("dev")

    _each_write_fails(tmp_path, "dev", destroy, prepare=lambda o: o.up("dev", ["payments"]))


def test_every_write_of_env_create_can_fail_without_changing_a_live_environment(tmp_path: Path) -> None:
    clock = FrozenClock()

    def create(o: Orchestrator) -> Any:
        envs = EphemeralEnvironments(o.library, o.registry, o, clock=clock)
        return envs.create("pr-1", contexts=["orders"], ttl="2h", reuse=["network", "shared-bus"])[1]

    def prepare(o: Orchestrator) -> None:
        assert o.up("dev", ["network", "shared-bus"]).ok

    _each_write_fails(tmp_path, "pr-1", create, prepare)


_WRITE_METHODS = {"begin_run", "end_run", "release_lock", "mark_running", "record_success", "record_failure",
                  "forget_stack", "put_environment", "ensure_environment", "set_environment_status"}


class MethodFaults:
    """Wraps a :class:`Registry` object: the ``fail_at``-th call of a writing method raises the raw SQLite error,
    before it writes anything (a registry backend that does not translate its errors)."""

    def __init__(self, inner: Registry, fail_at: int | None):
        self.inner = inner
        self.fail_at = fail_at
        self.calls = 0
        self.failed = 0
        self.lock = threading.Lock()  # stacks run in threads: count each call exactly once

    def _fails_now(self) -> bool:
        with self.lock:
            self.calls += 1
            if self.calls == self.fail_at:
                self.failed += 1
                return True
            return False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in _WRITE_METHODS:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._fails_now():
                raise sqlite3.OperationalError("database or disk is full")
            return attr(*args, **kwargs)

        return call


def test_each_write_method_can_fail_without_a_false_success_or_a_stuck_lock(tmp_path: Path) -> None:
    def run(state: Path, fail_at: int | None) -> tuple[MethodFaults, Ledger, Any]:
        library = load_library(SAMPLE)
        registry = Registry(state)
        engine = Ledger(SimulatedEngine(library, state, run_programs=False))
        faults = MethodFaults(registry, fail_at)
        orchestrator = Orchestrator(library, faults, engine, parallel=2, backoff_s=0)  # type: ignore[arg-type]
        result = None
        try:
            result = orchestrator.up("dev", ["payments"])
        except (OdeError, sqlite3.Error):
            pass  # begin_run itself failed: nothing ran
        return faults, engine, result

    total = run(tmp_path / "count", None)[0].calls
    assert total >= 10
    for n in range(1, total + 1):
        state = tmp_path / f"m{n}"
        faults, engine, result = run(state, n)
        assert faults.failed == 1
        _check_consistent(faults.inner, engine, "dev", result)
        if result is not None:
            assert not result.ok or all(s.status == "succeeded" for s in result.stacks)


class AfterWriteFaults(MethodFaults):
    """Like :class:`MethodFaults`, but the failing call writes first and raises after (a commit that went
    through, then an error from the disk), and the wrapper offers only the registry's original methods."""

    def __getattr__(self, name: str) -> Any:
        if name in ("release_lock", "knows"):
            raise AttributeError(name)
        attr = getattr(self.inner, name)
        if name not in _WRITE_METHODS:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            if self._fails_now():
                raise OSError(28, "No space left on device")
            return result

        return call


def test_a_write_that_fails_after_it_happened_leaves_no_lock_and_no_false_success(tmp_path: Path) -> None:
    def run(state: Path, fail_at: int | None) -> tuple[MethodFaults, Ledger, Any]:
        library = load_library(SAMPLE)
        engine = Ledger(SimulatedEngine(library, state, run_programs=False))
        faults = AfterWriteFaults(Registry(state), fail_at)
        orchestrator = Orchestrator(library, faults, engine, parallel=2, backoff_s=0)  # type: ignore[arg-type]
        result = None
        try:
            result = orchestrator.up("dev", ["payments"])
        except OSError:
            pass
        return faults, engine, result

    total = run(tmp_path / "count", None)[0].calls
    for n in range(1, total + 1):
        faults, engine, result = run(tmp_path / f"a{n}", n)
        assert faults.failed == 1
        _check_consistent(faults.inner, engine, "dev", result)


def test_hand_edited_lock_and_schema_rows_are_one_error_or_ignored(tmp_path: Path) -> None:
    Registry(tmp_path).close()
    db = sqlite3.connect(tmp_path / "registry.db")
    db.execute("INSERT INTO locks VALUES ('dev', 'someone', ?, 'not-a-pid', 'up', '2026-01-01')",
               (socket.gethostname(),))
    db.commit()
    registry = Registry(tmp_path)
    run = registry.begin_run("dev", "up", "simulated")  # a pid that names no process holds nothing
    registry.end_run(run, "dev", "succeeded")
    registry.close()
    db.execute("UPDATE meta SET value = 'one' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(RegistryError, match="schema version 'one' is not a number"):
        Registry(tmp_path)


def test_a_disk_that_stays_full_is_one_error_and_records_no_success(tmp_path: Path) -> None:
    orchestrator, registry, engine = _open(tmp_path)
    assert orchestrator.up("dev", ["identity"]).ok
    before = max(r.id for r in registry.runs("dev"))
    faulty = FaultyDb(registry._db, 6, sticky=True)
    registry._db = faulty  # type: ignore[assignment]
    try:
        result = orchestrator.up("dev", ["payments"])
        assert not result.ok
        errors = [s.error for s in result.stacks if s.status == "failed"]
        assert errors and all("disk is full" in (e or "") for e in errors)
    except RegistryError as exc:
        assert "disk is full" in str(exc) and str(registry.path) in str(exc)
    finally:
        registry._db = faulty.db
    for stack in registry.stacks("dev"):
        if stack.status == "succeeded":
            assert stack.stack in engine.deployed
    assert all(r.status != "succeeded" for r in registry.runs("dev") if r.id > before)


def test_a_read_only_registry_is_named_with_what_to_do(tmp_path: Path) -> None:
    orchestrator, registry, _ = _open(tmp_path)
    registry._db = FaultyDb(registry._db, 1, error="attempt to write a readonly database",  # type: ignore[assignment]
                            sticky=True)
    with pytest.raises(RegistryError, match=r"registry .*registry\.db: attempt to write a readonly database \(it is "
                                            r"read-only"):
        orchestrator.up("dev", ["identity"])


# -- registry files a user can break, through the command line --------------------------------------------------


def ode(cwd: Path, *args: str) -> Ran:
    return run_ode(*args, "--contracts", str(SAMPLE), cwd=cwd, env={"NO_COLOR": "1", "ODE_SIMULATE_PROGRAMS": "0"})


def _one_error_line(done: Ran, code: int, *needles: str) -> None:
    assert done.returncode == code, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.fixture
def deployed(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    done = ode(tmp_path, "up", "--env", "dev", "--contexts", "identity", "--engine", "simulated", "--state-dir",
               str(state))
    assert done.returncode == 0, done.stderr
    return state


def test_an_empty_registry_file_is_an_error_not_a_fresh_start(tmp_path: Path, deployed: Path) -> None:
    (deployed / "registry.db").write_bytes(b"")
    for wal in deployed.glob("registry.db-*"):
        wal.unlink()
    done = ode(tmp_path, "up", "--env", "dev", "--contexts", "identity", "--engine", "simulated", "--state-dir",
               str(deployed))
    _one_error_line(done, 1, "registry.db is empty")
    assert (deployed / "registry.db").stat().st_size == 0  # left as it was, for the user to restore


def test_a_deleted_registry_is_noticed(tmp_path: Path, deployed: Path) -> None:
    for path in deployed.glob("registry.db*"):
        path.unlink()
    listed = ode(tmp_path, "env", "list", "--state-dir", str(deployed))  # only reads: says so, makes nothing
    _one_error_line(listed, 2, "no registry at", "was registry.db deleted?")
    assert not (deployed / "registry.db").exists()
    done = ode(tmp_path, "gc", "--engine", "simulated", "--state-dir", str(deployed))  # a writer makes a new one
    assert done.returncode == 0
    assert "new registry" in done.stderr and "was registry.db deleted?" in done.stderr


def test_a_corrupt_registry_is_one_line(tmp_path: Path, deployed: Path) -> None:
    for wal in deployed.glob("registry.db-*"):
        wal.unlink()
    path = deployed / "registry.db"
    data = bytearray(path.read_bytes())
    data[200:4000] = b"\xff" * 3800
    path.write_bytes(bytes(data))
    done = ode(tmp_path, "status", "--env", "dev", "--state-dir", str(deployed))
    _one_error_line(done, 1, "registry", "corrupt")


def test_a_hand_edited_row_is_one_line_naming_it(tmp_path: Path, deployed: Path) -> None:
    db = sqlite3.connect(deployed / "registry.db")
    db.execute("UPDATE stacks SET outputs = '{not json' WHERE context = 'identity'")
    db.commit()
    db.close()
    done = ode(tmp_path, "status", "--env", "dev", "--state-dir", str(deployed))
    _one_error_line(done, 1, "dev.identity", "outputs")
    again = ode(tmp_path, "up", "--env", "dev", "--contexts", "identity", "--engine", "simulated", "--state-dir",
                str(deployed))
    _one_error_line(again, 1, "dev.identity")
    assert Registry(deployed).lock_holder("dev") is None  # the lock did not outlive the failed run


def test_a_state_dir_under_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    done = ode(tmp_path, "up", "--env", "dev", "--contexts", "identity", "--engine", "simulated", "--state-dir",
               str(tmp_path / "plain" / "state"))
    _one_error_line(done, 1, "plain")
    read = ode(tmp_path, "status", "--env", "dev", "--state-dir", str(tmp_path / "plain" / "state"))
    _one_error_line(read, 2, "no registry at", "plain")


def test_a_state_dir_that_cannot_be_made_is_one_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Path, *args: Any, **kwargs: Any) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(RegistryError, match="cannot be created: Permission denied"):
        Registry(tmp_path / "new")


def test_a_new_state_dir_is_private_and_announced(tmp_path: Path) -> None:
    state = tmp_path / "fresh"
    done = ode(tmp_path, "registry", "init", "--state-dir", str(state))
    assert done.returncode == 0, done.stderr
    assert "created" in done.stdout
    assert state.stat().st_mode & 0o777 == 0o700
    assert (state / "registry.db").stat().st_mode & 0o077 == 0
    other = tmp_path / "other"
    deployed = ode(tmp_path, "up", "--env", "dev", "--contexts", "identity", "--engine", "simulated", "--state-dir",
                   str(other))
    assert deployed.returncode == 0, deployed.stderr
    assert "new registry" in deployed.stderr and str(other / "registry.db") in deployed.stderr
    again = ode(tmp_path, "status", "--env", "dev", "--state-dir", str(other))
    assert again.returncode == 0 and "new registry" not in again.stderr


@pytest.mark.parametrize("command", [("status", "--env", "dev"), ("env", "list"), ("outputs", "--env", "dev"),
                                     ("drift", "--env", "dev", "--engine", "simulated")])
def test_a_command_that_only_reads_makes_no_registry(tmp_path: Path, command: tuple[str, ...]) -> None:
    state = tmp_path / "nowhere"
    done = ode(tmp_path, *command, "--state-dir", str(state))
    _one_error_line(done, 2, "no registry at", str(state / "registry.db"), "nothing was created")
    assert not state.exists()


def test_destroy_against_a_registry_that_does_not_know_the_environment_says_so(tmp_path: Path,
                                                                               deployed: Path) -> None:
    other = tmp_path / "wrong-state"
    done = ode(tmp_path, "destroy", "--env", "dev", "--yes", "--engine", "simulated", "--state-dir", str(other))
    _one_error_line(done, 2, "no record of environment 'dev'")
    assert "new registry" in done.stderr
    gc = ode(tmp_path, "gc", "--engine", "simulated", "--state-dir", str(tmp_path / "another"))
    assert gc.returncode == 0 and "new registry" in gc.stderr
    gone = ode(tmp_path, "env", "destroy", "pr-1", "--engine", "simulated", "--state-dir", str(other))
    _one_error_line(gone, 2, "pr-1")
