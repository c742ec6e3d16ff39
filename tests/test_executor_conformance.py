"""One conformance suite for every executor: the local one, Dask (a real cluster: a scheduler and two worker
processes on 127.0.0.1, each stack run by `ode stack run` in a child of a worker) and CodeBuild (the API on moto's
server, builds run by the local runner of tests/codebuild_runner.py, since moto runs nothing and drops the build's
variables). Each is held to the same promises: success (and where each stack ran), a failure and the skip of its
dependents, cancel, worker death (a killed worker fails only its stack; a rerun finishes), timeout, and a second
delivery of a running task refused.

The simulated engine runs on every side, its faults (a failure, a delay) carried by the task to the worker; the
registry is DynamoDB on moto's server, where the workers take their stack leases. The cluster is started once for
the module and stopped by it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ode.contracts import ContractLibrary, load_library
from ode.engines.simulated import SimulatedEngine
from ode.execution.events import EngineMessage
from ode.execution.executor import DuplicateDeliveryError, Executor, StackTask
from ode.execution.orchestrator import Orchestrator
from ode.executors import ExecutorSetup, open_executor
from ode.executors.codebuild import init_project, open_codebuild
from ode.executors.leases import open_leases
from ode.registry import open_registry
from ode.status import StackStatus

from .cli_runner import ode
from .codebuild_runner import LocalCodeBuild
from .conftest import context, write_library
from .moto_server import REGION, aws, moto_server  # noqa: F401  (pytest fixtures)

pytestmark = pytest.mark.slow

#: moto's account: the environment's, so that the CodeBuild project's role may assume its deploy role.
ACCOUNT = "123456789012"
ENVIRONMENTS = {"project": "conf", "environments": {"dev": {
    "account": ACCOUNT, "region": REGION, "role_arn": f"arn:aws:iam::{ACCOUNT}:role/ode-deploy"}}}
#: Every wait of this suite gives up after this long (a test never hangs; nothing here is a timing assertion).
PATIENCE_S = 90.0
#: Seconds a dead worker's stack lease outlives it.
LEASE_S = 3


def wait_for(check: Callable[[], bool], what: str, seconds: float = PATIENCE_S) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


# -- the cluster and the workers' environment -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def worker_env(moto_server: str) -> Iterator[None]:  # noqa: F811
    """What every worker process inherits: moto's server as the only AWS, no simulated programs (outputs from the
    contracts: fast), a short grace after a stop."""
    values = {"AWS_ENDPOINT_URL": moto_server, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
              "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, "AWS_CONFIG_FILE": os.devnull,
              "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "NO_PROXY": "127.0.0.1,localhost",
              "no_proxy": "127.0.0.1,localhost", "ODE_SIMULATE_PROGRAMS": "0", "ODE_CANCEL_GRACE_S": "10"}
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            patch.delenv(name, raising=False)
        for name, value in values.items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="module")
def cluster(worker_env: None) -> Iterator[Any]:
    """A Dask scheduler (in this process) and two worker processes, one task each at a time; a task whose worker
    died is not handed to another (allowed-failures 0)."""
    import dask
    import distributed

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        found = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                         dashboard_address=None)
    try:
        yield found
    finally:
        found.close()


# -- each executor, held the same way ---------------------------------------------------------------------------------


@dataclass
class Side:
    """One executor under test: how to open it, how to kill the worker running a stack, and how it names where a
    stack ran."""

    kind: str
    open: Callable[[ExecutorSetup, str], Executor]
    kill: Callable[[Executor, str], None] | None
    worker_kind: str


def _dask_side(cluster: Any) -> Side:
    address = cluster.scheduler_address.removeprefix("tcp://")

    def kill(executor: Executor, stack: str) -> None:
        client = executor.client  # type: ignore[attr-defined]
        busy = {w: keys for w, keys in client.processing().items() if any(f"ode-{stack}-" in k for k in keys)}
        assert len(busy) == 1, busy
        pids = client.run(os.getpid)
        os.kill(pids[next(iter(busy))], signal.SIGKILL)

    return Side("dask", lambda setup, query: open_executor(f"dask://{address}?{query}", setup), kill, "dask")


def _codebuild_side(tmp_path: Path, library: ContractLibrary, registry_url: str) -> Side:
    init_project(project="ode-conf", region=REGION, library=library, source_type="GITHUB",
                 source_location="https://github.com/example/shop", install="true", registry_url=registry_url)
    service = LocalCodeBuild(REGION, tmp_path)

    def opened(setup: ExecutorSetup, query: str) -> Executor:
        return open_codebuild(f"codebuild://ode-conf?region={REGION}&poll=0.2&{query}", setup, service=service)

    def kill(executor: Executor, stack: str) -> None:
        context = stack.split(".", 1)[1]
        builds = [r["build_id"] for r in service.requests if f'"context": "{context}"' in r["variables"]["ODE_TASK"]]
        service.kill(builds[-1])

    return Side("codebuild", opened, kill, "codebuild")


@pytest.fixture(params=["local", "dask", "codebuild"])
def side(request: pytest.FixtureRequest, tmp_path: Path, library: ContractLibrary, registry_url: str) -> Side:
    if request.param == "local":
        return Side("local", lambda setup, query: open_executor(f"local://?{query}", setup), None, "local")
    if request.param == "dask":
        return _dask_side(request.getfixturevalue("cluster"))
    return _codebuild_side(tmp_path, library, registry_url)


@pytest.fixture
def library(tmp_path: Path) -> ContractLibrary:
    """a <- b <- c, and d alone."""
    return load_library(write_library(tmp_path / "contracts", [
        context("a"), context("b", consumes=[{"context": "a", "interface": "t"}]),
        context("c", consumes=[{"context": "b", "interface": "t"}]), context("d")], ENVIRONMENTS))


@pytest.fixture
def registry_url(aws: str, worker_env: None) -> str:  # noqa: F811
    return f"dynamodb://ode-conformance?region={REGION}"  # moto's server is emptied before each test


class Lines:
    """A reporter that keeps each stack's engine lines (the progress that came back from its worker)."""

    def __init__(self) -> None:
        self.lines: dict[str, list[str]] = {}

    def handle(self, event: Any) -> None:
        if isinstance(event, EngineMessage):
            self.lines.setdefault(event.stack, []).append(event.line)

    def started(self, stack: str) -> bool:
        return any("up (simulated)" in line for line in self.lines.get(stack, []))


@dataclass
class Run:
    orchestrator: Orchestrator
    executor: Executor
    reporter: Lines
    state: Path


def make_run(side: Side, library: ContractLibrary, registry_url: str, state: Path, *, query: str = "",
             failures: tuple[str, ...] = (), delays: dict[str, float] | None = None) -> Run:
    engine = SimulatedEngine(library, state, failures=failures, delays=delays, run_programs=False)
    setup = ExecutorSetup(engine=engine, library=library, state_dir=state, registry_url=registry_url,
                          engine_options={"failures": list(failures), "delays": dict(delays or {}),
                                          "run_programs": False})
    executor = side.open(setup, f"lease={LEASE_S}&{query}")
    reporter = Lines()
    registry = open_registry(registry_url, state)
    return Run(Orchestrator(library, registry, engine, parallel=4, executor=executor, reporter=reporter,
                            retries=0), executor, reporter, state)


@pytest.fixture
def runs(side: Side, library: ContractLibrary, registry_url: str, tmp_path: Path) -> Iterator[Callable[..., Run]]:
    made: list[Run] = []

    def make(**kwargs: Any) -> Run:
        made.append(make_run(side, library, registry_url, tmp_path / ".ode", **kwargs))
        return made[-1]

    yield make
    for run in made:
        run.executor.close()
        run.orchestrator.registry.close()


def up_in_thread(run: Run) -> Future[Any]:
    result: Future[Any] = Future()

    def go() -> None:
        try:
            result.set_result(run.orchestrator.up("dev"))
        except BaseException as exc:  # noqa: BLE001 - the test's main thread raises it
            result.set_exception(exc)

    threading.Thread(target=go, daemon=True).start()
    return result


def statuses(result: Any) -> dict[str, StackStatus]:
    return {s.context: s.status for s in result.stacks}


# -- the promises -----------------------------------------------------------------------------------------------------


def test_every_stack_runs_on_a_worker_that_says_where(side: Side, runs: Callable[..., Run], cluster_pids: Any) -> None:
    run = runs()
    result = run.orchestrator.up("dev")
    assert statuses(result) == dict.fromkeys("abcd", StackStatus.SUCCEEDED)
    for outcome in result.stacks:
        worker = outcome.worker
        assert worker is not None and worker["kind"] == side.worker_kind, outcome
        if side.kind == "local":
            assert worker["pid"] == os.getpid()
        elif side.kind == "dask":
            assert worker["pid"] in cluster_pids() and worker["pid"] != os.getpid()
            assert outcome.log is not None, outcome
            kept = Path(outcome.log).read_text()
            assert "up (simulated)" in kept and f"dask: running on worker {worker['address']}" in kept
        else:
            assert worker["build_id"].startswith("ode-conf:")
            assert (outcome.log or "").startswith("https://"), outcome  # the build's CloudWatch Logs link
    # What ran where is in the registry too: `ode status --json` shows it.
    recorded = {s.context: s.worker for s in run.orchestrator.status("dev").stacks}
    assert recorded == {s.context: s.worker for s in result.stacks}
    # Progress came back from the workers as the stacks ran.
    assert all(run.reporter.started(f"dev.{c}") for c in "abcd")


def test_a_failure_skips_only_what_needs_it(runs: Callable[..., Run]) -> None:
    result = runs(failures=("b",)).orchestrator.up("dev")
    assert statuses(result) == {"a": StackStatus.SUCCEEDED, "b": StackStatus.FAILED, "c": StackStatus.SKIPPED,
                                "d": StackStatus.SUCCEEDED}
    assert "failure injected" in (result.stack("b").error or "")


def test_a_cancelled_stack_stops_on_its_worker(runs: Callable[..., Run]) -> None:
    run = runs(delays={"b": 60.0})
    pending = up_in_thread(run)
    wait_for(lambda: run.reporter.started("dev.b"), "dev.b to start on its worker")
    assert run.executor.cancel("dev.b")
    result = pending.result(timeout=PATIENCE_S)
    assert statuses(result) == {"a": StackStatus.SUCCEEDED, "b": StackStatus.FAILED, "c": StackStatus.SKIPPED,
                                "d": StackStatus.SUCCEEDED}
    assert "cancel" in (result.stack("b").error or "")


def test_a_stack_past_its_time_limit_is_stopped(runs: Callable[..., Run]) -> None:
    result = runs(query="timeout=2", delays={"b": 60.0}).orchestrator.up("dev")
    assert statuses(result) == {"a": StackStatus.SUCCEEDED, "b": StackStatus.FAILED, "c": StackStatus.SKIPPED,
                                "d": StackStatus.SUCCEEDED}
    assert "timed out after 2 s" in (result.stack("b").error or "")


def test_a_killed_worker_fails_only_its_stack_and_a_rerun_finishes(side: Side, runs: Callable[..., Run],
                                                                    registry_url: str) -> None:
    if side.kill is None:
        pytest.skip("the local executor's worker is the coordinator itself: a killed `ode` is held to the same "
                    "promise by test_orchestrator.py's SIGKILL test (the next run redoes what was running)")
    run = runs(delays={"b": 60.0})
    pending = up_in_thread(run)
    wait_for(lambda: run.reporter.started("dev.b"), "dev.b to start on its worker")
    side.kill(run.executor, "dev.b")
    result = pending.result(timeout=PATIENCE_S)
    assert statuses(result) == {"a": StackStatus.SUCCEEDED, "b": StackStatus.FAILED, "c": StackStatus.SKIPPED,
                                "d": StackStatus.SUCCEEDED}
    error = result.stack("b").error or ""
    assert "died" in error or "without a result" in error, error
    # Its lease runs out (or was given up by the worker's child as it stopped), and the next run redoes it.
    leases = open_leases(registry_url)
    wait_for(lambda: leases.holder("dev.b") is None, "dev.b's lease to run out", seconds=LEASE_S * 10)
    again = runs().orchestrator.up("dev")
    assert statuses(again) == {"a": StackStatus.UNCHANGED, "b": StackStatus.SUCCEEDED, "c": StackStatus.SUCCEEDED,
                               "d": StackStatus.UNCHANGED}


def test_a_second_delivery_of_a_running_task_is_refused(side: Side, runs: Callable[..., Run]) -> None:
    run = runs(delays={"a": 5.0})
    task = StackTask("up", run.orchestrator.stack_spec("dev", "a"), run_id=1)
    answers: list[Any] = []
    lock = threading.Lock()

    def deliver() -> None:
        try:
            answer: Any = run.executor.submit(task).result(timeout=PATIENCE_S)
        except DuplicateDeliveryError as refused:
            answer = refused
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=PATIENCE_S)
    refused = [a for a in answers if isinstance(a, DuplicateDeliveryError)]
    assert len(answers) == 2 and len(refused) == 1, answers
    done = next(a for a in answers if not isinstance(a, DuplicateDeliveryError))
    assert done.outputs["t"]["name"]
    assert ("leased by" if side.kind != "local" else "running here already") in str(refused[0])


@pytest.fixture
def cluster_pids(request: pytest.FixtureRequest, side: Side) -> Callable[[], set[int]]:
    if side.kind != "dask":
        return lambda: set()
    found = request.getfixturevalue("cluster")

    def pids() -> set[int]:
        import distributed

        with distributed.Client(found.scheduler_address) as client:
            return set(client.run(os.getpid).values())

    return pids


def test_ode_up_deploys_the_sample_through_dask_workers_and_status_says_where(
        cluster: Any, registry_url: str, sample_library: Path, tmp_path: Path) -> None:
    import json

    common = ["--env", "dev", "--registry", registry_url, "--contracts", str(sample_library), "--state-dir",
              str(tmp_path / "state"), "--json"]
    address = cluster.scheduler_address.removeprefix("tcp://")
    done = ode(*["up", *common, "--engine", "simulated", "--executor", f"dask://{address}"])
    assert done.exit_code == 0, done.output
    stacks = json.loads(done.stdout)["stacks"]
    import distributed

    with distributed.Client(cluster.scheduler_address) as client:
        pids = set(client.run(os.getpid).values())
    from ode import EnvGraph

    assert {s["context"] for s in stacks} == set(EnvGraph.resolve(load_library(sample_library), "dev").contexts)
    assert all(s["status"] == "succeeded" and s["worker"]["kind"] == "dask" and s["worker"]["pid"] in pids
               for s in stacks), stacks
    assert len({s["worker"]["pid"] for s in stacks}) == 2  # both workers took stacks
    status = json.loads(ode(*["status", *common]).stdout)["stacks"]
    assert {s["stack"]: s["worker"] for s in status} == {s["stack"]: s["worker"] for s in stacks}
    assert all(Path(s["log"]).is_file() for s in status)
