"""Programs under mocks run side by side in worker processes (pulumi's mock runtime is global to a process): the
results are those of one process, the workers start and stop with the work, and a lost worker loses nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ode import EnvGraph, load_library
from ode.contracts import ContractLibrary
from ode.engines import StackSpec
from ode.engines.simulated import WORKERS_VARIABLE, ProgramRunner, active_runner, program_workers, run_simulated
from ode.policy.environment import check_environment
from ode.policy.gate import StackRun, preview_stack

from .cli_runner import ode
from .conftest import ROOT, SAMPLE


def stopped(pid: int) -> bool:
    """Whether the process ``pid`` has ended (gone, or a zombie its parent has not reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def checked(library: ContractLibrary, workers: int, monkeypatch: pytest.MonkeyPatch,
            ) -> tuple[dict[str, Any], dict[str, list[Any]], set[int]]:
    """``ode check``'s report of dev, the resources each stack's preview gave, and the processes that ran them."""
    monkeypatch.setenv(WORKERS_VARIABLE, str(workers))
    previews: dict[str, list[Any]] = {}
    pids: set[int] = set()

    def preview(spec: StackSpec, lib: ContractLibrary) -> StackRun:
        run = preview_stack(spec, lib)
        runner = active_runner(lib)
        pids.update(runner.pids if runner is not None and runner.parallel else {os.getpid()})
        previews[spec.context] = [(r.type, r.name, r.parent, json.dumps(r.props, sort_keys=True, default=str))
                                  for r in run.resources]
        return run

    result = check_environment(library, "dev", preview=preview)
    return result.report.to_dict(), previews, pids


def test_parallel_previews_give_what_one_process_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    library = load_library(SAMPLE, "dev")
    assert len(EnvGraph.resolve(library, "dev")) == 10
    alone, previews_alone, pids_alone = checked(library, 1, monkeypatch)
    side_by_side, previews_parallel, pids = checked(library, 2, monkeypatch)
    assert pids_alone == {os.getpid()}
    assert os.getpid() not in pids  # worker processes ran the programs
    assert len(pids) in (1, 2)  # at most the two asked for
    assert side_by_side == alone  # the same violations, in the same order
    assert previews_parallel == previews_alone  # the same resources, in the same order, with the same inputs
    assert all(stopped(pid) for pid in pids)  # and the workers ended with the check


def test_a_script_that_calls_ode_at_its_top_level_is_not_run_again_by_the_workers(tmp_path: Path) -> None:
    script = tmp_path / "audit.py"
    script.write_text(
        "from ode import load_library\n"
        "from ode.policy.environment import check_environment\n"
        "print('started', flush=True)\n"
        f"result = check_environment(load_library({str(SAMPLE)!r}, 'dev'), 'dev')\n"
        "print('stacks', len(result.stacks), 'ok', result.report.ok, flush=True)\n")
    env = {**os.environ, WORKERS_VARIABLE: "2", "PYTHONPATH": f"{ROOT / 'platform'}{os.pathsep}{ROOT}"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["started", "stacks 10 ok True"], done.stdout + done.stderr


def test_a_worker_that_dies_loses_no_program(monkeypatch: pytest.MonkeyPatch) -> None:
    library = load_library(SAMPLE, "dev")
    spec = StackSpec(project=library.project, env="dev", context="analytics", contracts_dir=library.root)
    here = run_simulated(spec, library)
    with ProgramRunner(library, workers=2, eager=True) as runner:
        first = runner.run(spec)
        assert runner.parallel and len(runner.pids) >= 1
        for pid in runner.pids:
            os.kill(pid, signal.SIGKILL)
        again = runner.run(spec)  # the pool is broken: the program runs here instead
        assert not runner.parallel
    for run in (first, again):
        assert [(r.type, r.name, r.inputs) for r in run.resources] == [(r.type, r.name, r.inputs)
                                                                        for r in here.resources]
        assert run.outputs == here.outputs


def test_an_engine_starts_workers_only_when_several_programs_wait_at_once() -> None:
    library = load_library(SAMPLE, "dev")
    spec = StackSpec(project=library.project, env="dev", context="analytics", contracts_dir=library.root)
    runner = ProgramRunner(library, workers=2)
    try:
        for _ in range(6):  # one after another: never several at once, no worker
            runner.run(spec)
        assert not runner.pids and not runner.parallel
        results: list[Any] = []
        threads = [threading.Thread(target=lambda: results.append(runner.run(spec))) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert len(results) == 4
        assert runner._ready.wait(timeout=120)  # noqa: SLF001 - the workers started, in the background
        remote = runner.run(spec)
        assert runner.parallel and runner.pids and os.getpid() not in runner.pids
        assert [(r.type, r.name, r.inputs) for r in remote.resources] == \
            [(r.type, r.name, r.inputs) for r in results[0].resources]
        pids = set(runner.pids)
    finally:
        runner.close()
    assert all(stopped(pid) for pid in pids)


def test_resources_come_back_in_the_programs_order_every_time() -> None:
    library = load_library(SAMPLE, "dev")
    spec = StackSpec(project=library.project, env="dev", context="network", contracts_dir=library.root)
    orders = {tuple((r.type, r.name) for r in run_simulated(spec, library).resources) for _ in range(4)}
    assert len(orders) == 1
    (order,) = orders
    assert order[:3] == (("pulumi:providers:aws", "aws"), ("ode:index:Network", "network"),
                         ("aws:ec2/vpc:Vpc", "network-vpc"))


def test_runs_of_many_stacks_get_workers_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WORKERS_VARIABLE, raising=False)
    assert program_workers(10) == 1  # done before workers would be ready
    assert program_workers(200) == max(1, min(os.cpu_count() or 1, 4))
    monkeypatch.setenv(WORKERS_VARIABLE, "3")
    assert program_workers(10) == 3 and program_workers(2) == 2 and program_workers(1) == 1
    monkeypatch.setenv(WORKERS_VARIABLE, "0")
    assert program_workers(200) == 1


@pytest.mark.parametrize("value", ["many", "-1", "65"])
def test_a_bad_number_of_workers_is_one_line(sample_library: Path, monkeypatch: pytest.MonkeyPatch,
                                             value: str) -> None:
    monkeypatch.setenv(WORKERS_VARIABLE, value)
    result = ode("check", "--env", "dev", "--contracts", str(sample_library))
    assert result.exit_code == 2 and f"{WORKERS_VARIABLE}={value!r}: a number of worker processes from 0 to 64" \
        in result.stderr


def test_workers_end_when_their_parent_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "holder.py"
    script.write_text(
        "import sys, time\n"
        "from ode import load_library\n"
        "from ode.engines import StackSpec\n"
        "from ode.engines.simulated import ProgramRunner\n"
        f"library = load_library({str(SAMPLE)!r}, 'dev')\n"
        "spec = StackSpec(project=library.project, env='dev', context='analytics', contracts_dir=library.root)\n"
        "runner = ProgramRunner(library, workers=2, eager=True).__enter__()\n"
        "runner.run(spec)\n"
        "print(' '.join(map(str, sorted(runner.pids))), flush=True)\n"
        "time.sleep(600)\n")
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'platform'}{os.pathsep}{ROOT}"}
    holder = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout is not None
        pids = [int(p) for p in holder.stdout.readline().split()]
        assert pids and all(not stopped(pid) for pid in pids)
    finally:
        holder.kill()  # no chance to stop its workers
        holder.wait(timeout=60)
    deadline = time.monotonic() + 60
    while not all(stopped(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [pid for pid in pids if not stopped(pid)]
    for pid in left:  # not left behind on the machine when this fails
        os.kill(pid, signal.SIGKILL)
    assert not left
