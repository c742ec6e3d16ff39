"""Standing guard: a runner paused past its lease writes nothing when it wakes.

Two real ``ode up`` processes share one registry. Runner A (a short lease, slow simulated stacks) is frozen with
SIGSTOP in the middle of a stack, as a GC pause or a frozen VM would freeze it; runner B takes the environment over
and deploys newer code; A is thawed with SIGCONT. A must then write nothing (the registry is exactly as B left it),
start nothing more, and exit 3 with one line naming B's run. Once on DynamoDB (moto's server on 127.0.0.1: A's lease
runs out while it is frozen), once on a SQLite file that two hosts share (B breaks the lock of A's host with
``--force-unlock``, taking that host for gone: the one way a SQLite lock changes hands while its holder lives).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from ode.registry.dynamodb import DynamoDBRegistry, create_table

from .cli_runner import Ran, process_env
from .cli_runner import ode as run_ode
from .conftest import ROOT, SAMPLE
from .moto_server import REGION, aws, moto_server  # noqa: F401  (pytest fixtures)

TABLE = "ode-fencing"
#: Runner A's host name on the shared SQLite file: not this machine's, as another CI runner's would be.
OTHER_HOST = "runner-a.example"
#: How long a test waits for a process to get somewhere at most: nothing here may hang.
DEADLINE_S = 90.0


#: What both runners see: no colour, outputs synthesized from the contracts (no program runs).
ENV = {"NO_COLOR": "1", "ODE_SIMULATE_PROGRAMS": "0"}


def start_a(args: list[str], *, host: str | None = None) -> subprocess.Popen[str]:
    """Runner A: ``ode ARGS`` in a process of its own (on ``host`` when given: its lock then names that host)."""
    if host is None:
        command = [sys.executable, "-m", "ode.cli", *args]
    else:
        launcher = ("import runpy, socket\n"
                    f"socket.gethostname = lambda: {host!r}\n"
                    "runpy.run_module('ode.cli', run_name='__main__')\n")
        command = [sys.executable, "-c", launcher, *args]
    return subprocess.Popen(command, cwd=ROOT, env=process_env(ENV), text=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def ode(*args: str) -> Ran:
    """Runner B: ``ode ARGS`` to its end (in this process: B only has to be another process than A)."""
    return run_ode(*args, cwd=ROOT, env=ENV, timeout=DEADLINE_S)


def wait_until(what: str, ready: Callable[[], bool], proc: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not ready():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"runner A ended before {what}: {proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.02)


def newer_code(tmp_path: Path) -> Path:
    """The sample library with a change in catalog's settings: what B deploys is not what A was deploying."""
    lib = tmp_path / "newer"
    shutil.copytree(SAMPLE, lib)
    doc = yaml.safe_load((lib / "catalog.yaml").read_text())
    doc["settings"]["memory_mb"] = 1024
    (lib / "catalog.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return lib


def check_a_stopped(a: subprocess.Popen[str], successor_run: int) -> str:
    """A ends with exit 3 and one error line naming the run that took over; returns that line."""
    out, err = a.communicate(timeout=DEADLINE_S)
    assert a.returncode == 3, (a.returncode, out, err)
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert "lost the lock on environment 'dev'" in errors[0] and f"(run {successor_run}, `up`)" in errors[0]
    assert "abandoned" in errors[0]
    return errors[0]


def frozen(a: subprocess.Popen[str], while_frozen: Callable[[], Any]) -> Any:
    """Freeze A (SIGSTOP), do ``while_frozen``, thaw A (SIGCONT) however that ended."""
    os.kill(a.pid, signal.SIGSTOP)
    try:
        return while_frozen()
    finally:
        os.kill(a.pid, signal.SIGCONT)


@pytest.mark.slow
@pytest.mark.usefixtures("aws")
def test_a_runner_frozen_past_its_dynamodb_lease_writes_nothing_when_it_wakes(tmp_path: Path) -> None:
    url = f"dynamodb://{TABLE}?region={REGION}&lease=2"
    create_table(TABLE, region=REGION)
    registry = DynamoDBRegistry(TABLE, region=REGION)
    client = boto3.client("dynamodb", region_name=REGION)

    def table() -> list[Any]:
        items = client.scan(TableName=TABLE, ConsistentRead=True)["Items"]
        return sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))

    a = start_a(["up", "--env", "dev", "--engine", "simulated", "--contracts", str(SAMPLE), "--registry", url,
                 "--state-dir", str(tmp_path / "a"), "--parallel", "2", "--simulate-delay", "*=4"])
    try:
        wait_until("a stack of A runs", lambda: bool(registry.interrupted("dev")), a)
        lease = registry.lease("dev")
        assert lease is not None and lease.pid == a.pid
        a_run = lease.run_id

        def b_takes_over() -> tuple[Ran, list[Any]]:
            wait_until("A's lease ran out", lambda: bool(registry.lease("dev") and registry.lease("dev").expired))  # type: ignore[union-attr]
            done = ode("up", "--env", "dev", "--engine", "simulated", "--contracts", str(newer_code(tmp_path)),
                       "--registry", url, "--state-dir", str(tmp_path / "b"), "--json")
            return done, table()

        b, after_b = frozen(a, b_takes_over)
        assert b.returncode == 0, b.stderr
        assert {s["status"] for s in json.loads(b.stdout)["stacks"]} == {"succeeded"}
        b_run = max(r.id for r in registry.runs("dev"))
        check_a_stopped(a, b_run)
    finally:
        if a.poll() is None:
            os.kill(a.pid, signal.SIGCONT)
            a.kill()
            a.communicate(timeout=30)
    assert table() == after_b  # A wrote nothing at all after B took over: not a stack, not its run, not the lease
    assert {r.id: r.status for r in registry.runs("dev")} == {a_run: "abandoned", b_run: "succeeded"}
    catalog = registry.stack("dev", "catalog")
    assert catalog is not None and catalog.status == "succeeded"
    assert registry.lease("dev") is None
    registry.close()


@pytest.mark.slow
def test_a_runner_whose_shared_sqlite_lock_was_taken_over_writes_nothing_when_it_wakes(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    url = f"sqlite:///{shared / 'registry.db'}"

    def rows() -> dict[str, list[Any]]:
        db = sqlite3.connect(shared / "registry.db", timeout=30)
        try:
            return {t: db.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()  # noqa: S608 - fixed names
                    for t in ("environments", "stacks", "runs", "locks")}
        finally:
            db.close()

    def running() -> list[str]:
        if not (shared / "registry.db").exists():
            return []
        try:
            return [r[1] for r in rows()["stacks"] if r[2] == "running"]
        except sqlite3.OperationalError:  # the tables are not made yet
            return []

    a = start_a(["up", "--env", "dev", "--engine", "simulated", "--contracts", str(SAMPLE), "--registry", url,
                 "--state-dir", str(tmp_path / "a"), "--parallel", "1", "--simulate-delay", "*=4"], host=OTHER_HOST)
    try:
        wait_until("a stack of A runs", lambda: bool(running()), a)
        held = rows()["locks"]
        assert len(held) == 1 and held[0][2] == OTHER_HOST and held[0][3] == a.pid

        def b_takes_over() -> tuple[Ran, dict[str, list[Any]]]:
            refused = ode("up", "--env", "dev", "--engine", "simulated", "--contracts", str(SAMPLE), "--registry",
                          url, "--state-dir", str(tmp_path / "b"))
            assert refused.returncode == 3 and OTHER_HOST in refused.stderr  # another host's lock holds
            done = ode("up", "--env", "dev", "--engine", "simulated", "--contracts", str(newer_code(tmp_path)),
                       "--registry", url, "--state-dir", str(tmp_path / "b"), "--force-unlock", "--json")
            return done, rows()

        b, after_b = frozen(a, b_takes_over)
        assert b.returncode == 0, b.stderr
        runs = {r[0]: r[7] for r in after_b["runs"]}
        b_run = max(runs)
        assert runs[b_run] == "succeeded" and after_b["locks"] == []
        check_a_stopped(a, b_run)
    finally:
        if a.poll() is None:
            os.kill(a.pid, signal.SIGCONT)
            a.kill()
            a.communicate(timeout=30)
    assert rows() == after_b  # A wrote nothing: its stacks, its run, the lock are as B left them
    assert [r[7] for r in after_b["runs"]] == ["abandoned", "succeeded"]
    assert {r[2] for r in after_b["stacks"]} == {"succeeded"}


# -- the registry's fenced writes, backend by backend ---------------------------------------------------------------


def _every_write(registry: Any, env: str) -> list[Callable[[], Any]]:
    """Each write a run makes about ``env``."""
    from ode.registry import EnvironmentRecord

    return [
        lambda: registry.ensure_environment(env),
        lambda: registry.put_environment(EnvironmentRecord(name=env)),
        lambda: registry.set_environment_status(env, "failed"),
        lambda: registry.mark_running(env, "orders", engine="simulated", started_at="t", run_id=1),
        lambda: registry.record_success(env, "orders", fingerprint="stale", inputs={}, outputs={}, secret_outputs=[],
                                        engine="simulated", simulated=True, started_at="t", finished_at="t",
                                        duration_s=1.0),
        lambda: registry.record_failure(env, "orders", error="boom", finished_at="t", duration_s=1.0),
        lambda: registry.forget_stack(env, "orders"),
        lambda: registry.record_drift_check(env, "orders", checked_at="t", drifted=[]),
        lambda: registry.record_heal(env, "orders", healed_at="t", run_id=1),
    ]


def _take_over(kind: str, tmp_path: Path) -> tuple[Any, Any, Callable[[], Any]]:
    """Runner A's registry holding dev, runner B's having taken dev over, and what reads everything B sees."""
    from datetime import timedelta

    from ode.clock import utcnow
    from ode.registry.sqlite import Registry

    if kind == "sqlite":
        a: Any = Registry(tmp_path)
        a.begin_run("dev", "up", "simulated")
        db = sqlite3.connect(tmp_path / "registry.db")
        db.execute("UPDATE locks SET host = ? WHERE env = 'dev'", (OTHER_HOST,))  # A's host, as another one
        db.commit()
        db.close()
        b: Any = Registry(tmp_path)
        b.begin_run("dev", "up", "pulumi", force_unlock=True)

        def seen() -> Any:
            return {t: sqlite3.connect(tmp_path / "registry.db").execute(
                f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in ("environments", "stacks", "runs", "locks")}  # noqa: S608
        return a, b, seen
    create_table(TABLE, region=REGION)
    a = DynamoDBRegistry(TABLE, region=REGION, lease_s=2)
    a.begin_run("dev", "up", "simulated")
    for beat in a._heartbeats.values():  # A is frozen: it renews nothing
        beat.stopped.set()
    b = DynamoDBRegistry(TABLE, region=REGION, clock=lambda: utcnow() + timedelta(seconds=5))
    b.begin_run("dev", "up", "pulumi")
    client = boto3.client("dynamodb", region_name=REGION)
    return a, b, lambda: sorted(client.scan(TableName=TABLE)["Items"], key=lambda i: (i["pk"]["S"], i["sk"]["S"]))


@pytest.mark.parametrize("kind", ["sqlite", "dynamodb"])
def test_every_write_of_a_run_that_lost_its_lock_is_refused_and_changes_nothing(
        kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from ode.registry.errors import LeaseLostError

    if kind == "dynamodb":
        request.getfixturevalue("aws")
    a, b, seen = _take_over(kind, tmp_path)
    b.mark_running("dev", "orders", engine="pulumi", started_at="2026-01-01T00:00:00", run_id=2)
    before = seen()
    for write in _every_write(a, "dev"):
        with pytest.raises(LeaseLostError) as lost:
            write()
        assert lost.value.exit_code == 3 and lost.value.successor_run == 2 and lost.value.run_id == 1
        assert seen() == before
    assert a.lease_lost("dev") is not None and b.lease_lost("dev") is None
    a.end_run(1, "dev", "succeeded")  # A ends: its run is abandoned, B's lock and records stay
    assert {r.id: r.status for r in b.runs("dev")} == {1: "abandoned", 2: "running"}
    assert b.lock_holder("dev") is not None and b.stack("dev", "orders").engine == "pulumi"
    with pytest.raises(LeaseLostError):  # a thread of A still at work writes nothing either
        a.record_failure("dev", "orders", error="late", finished_at="t", duration_s=1.0)
    for write in _every_write(b, "dev"):  # B's writes go through
        write()
    b.end_run(2, "dev", "succeeded")
    assert b.lock_holder("dev") is None
    a.close()
    b.close()


@pytest.mark.usefixtures("aws")
def test_a_heartbeat_that_finds_its_lease_taken_tells_the_run() -> None:
    from datetime import timedelta

    from ode.clock import utcnow

    create_table(TABLE, region=REGION)
    a = DynamoDBRegistry(TABLE, region=REGION, lease_s=1.5)
    run = a.begin_run("dev", "up", "simulated")
    b = DynamoDBRegistry(TABLE, region=REGION, clock=lambda: utcnow() + timedelta(seconds=5))
    taken = b.begin_run("dev", "up", "pulumi")  # as if A had been frozen past its lease
    wait_until("A's heartbeat found the lease gone", lambda: a.lease_lost("dev") is not None)
    lost = a.lease_lost("dev")
    assert lost is not None and lost.run_id == run and lost.successor_run == taken
    assert b.lease("dev").run_id == taken  # type: ignore[union-attr]
    b.end_run(taken, "dev", "succeeded")
    a.close()
    b.close()


@pytest.mark.usefixtures("aws")
def test_a_run_that_hears_its_lease_is_gone_cancels_its_running_stacks(tmp_path: Path) -> None:
    """The heartbeat finds the lease taken (broken with --force-unlock --force by another runner): the run stops at
    once, and its two running stacks (30 s each) are cancelled: the engine never finishes them."""
    import threading

    from ode.contracts import load_library
    from ode.engines.simulated import SimulatedEngine
    from ode.execution.orchestrator import Orchestrator
    from ode.registry.errors import LeaseLostError

    create_table(TABLE, region=REGION)
    library = load_library(SAMPLE)
    engine = SimulatedEngine(library, tmp_path, delays={"*": 30}, run_programs=False)
    a = Orchestrator(library, DynamoDBRegistry(TABLE, region=REGION, lease_s=1.5), engine, parallel=2)
    ended: list[BaseException] = []
    client = boto3.client("dynamodb", region_name=REGION)

    def running() -> list[str]:  # read raw: moto lets a reader see an item half made by a concurrent write
        items = client.scan(TableName=TABLE)["Items"]
        return sorted(f"dev.{i['context']['S']}" for i in items
                      if i["sk"]["S"].startswith("STACK#") and i.get("status", {}).get("S") == "running")

    thread = threading.Thread(target=lambda: ended.append(_raised(lambda: a.up("dev"))))
    thread.start()
    b = DynamoDBRegistry(TABLE, region=REGION)
    try:
        wait_until("two stacks of A run", lambda: len(running()) == 2)
        in_flight = running()
        taken = b.begin_run("dev", "up", "pulumi", force_unlock=True, force=True)
        thread.join(timeout=DEADLINE_S)
    finally:
        if thread.is_alive():  # the test failed: let A end now rather than after its stacks' 30 s
            for context in library.contexts:
                engine.cancel(f"dev.{context}")
            thread.join(timeout=DEADLINE_S)
        a.registry.close()
    assert not thread.is_alive() and len(ended) == 1 and isinstance(ended[0], LeaseLostError), ended
    assert ended[0].successor_run == taken
    for stack in in_flight:  # cancelled: the engine never got to save what it would have deployed
        assert not (tmp_path / "simulated" / f"{stack}.json").exists()
        rec = b.stack("dev", stack.split(".", 1)[1])
        assert rec is not None and rec.status == "running"  # as A left it when it started: nothing after
    # A's run is abandoned and B's runs; ids need not be consecutive (B retries its take-over, with a new id, when
    # A's heartbeat renews the lease between B's read and B's write)
    lost = ended[0]
    assert {r.id: r.status for r in b.runs("dev")} == {lost.run_id: "abandoned", taken: "running"}
    assert lost.run_id < taken
    b.end_run(taken, "dev", "succeeded")
    b.close()


def _raised(action: Callable[[], Any]) -> BaseException:
    try:
        action()
    except BaseException as exc:  # noqa: BLE001 - what the test looks at
        return exc
    raise AssertionError("it did not stop")
