"""The ready-set queue alone: no registry, no engine, nodes are names."""

from __future__ import annotations

import random
import threading
from concurrent.futures import FIRST_COMPLETED

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ode.execution.scheduler as scheduler
from ode.execution.scheduler import ReadyQueue, Skip, run_ready

#       a -> b -> c -> d        (a long chain)
#       e -> f                  (a short one)
#       g                       (alone)
ORDER = ["a", "e", "g", "b", "f", "c", "d"]
DEPS = {"a": set(), "e": set(), "g": set(), "b": {"a"}, "f": {"e"}, "c": {"b"}, "d": {"c"}}


def drain(queue: ReadyQueue) -> list[str]:
    """Start and finish (well) one node at a time: the order the queue hands them out."""
    seen = []
    while (node := queue.pop()) is not None:
        seen.append(node)
        queue.finish(node)
    return seen


def test_the_critical_path_goes_first_and_ties_go_by_order() -> None:
    # chain lengths: a 4, b 3, c 2, e 2, d 1, f 1, g 1; e ties with c and comes first in ORDER
    assert drain(ReadyQueue(ORDER, DEPS)) == ["a", "b", "e", "c", "g", "f", "d"]
    # a tie (same chain length) is broken by the given order
    assert drain(ReadyQueue(["y", "x"], {"x": set(), "y": set()})) == ["y", "x"]


def test_known_durations_change_the_critical_path() -> None:
    # g alone takes longer than the whole a..d chain
    queue = ReadyQueue(ORDER, DEPS, weights={"g": 100.0, "a": 1, "b": 1, "c": 1, "d": 1, "e": 1, "f": 1})
    assert drain(queue)[0] == "g"
    # a node without a weight counts as the median of the known ones: here d and g weigh 1, so e..f (20) leads
    # a..d (4); with only e and f known, the median is 10 and a..d (40) leads again
    assert ReadyQueue(ORDER, DEPS, weights={"e": 10.0, "f": 10.0, "a": 1.0, "b": 1.0, "c": 1.0}).pop() == "e"
    assert ReadyQueue(ORDER, DEPS, weights={"e": 10.0, "f": 10.0}).pop() == "a"


def test_at_most_parallel_nodes_run_and_a_node_waits_for_all_its_deps() -> None:
    queue = ReadyQueue(["p", "q", "r", "s"], {"p": set(), "q": set(), "r": set(), "s": {"p", "q"}}, parallel=2)
    first, second = queue.pop(), queue.pop()
    assert {first, second} == {"p", "q"} and queue.pop() is None and queue.running == {"p", "q"}
    queue.finish("p")
    assert queue.pop() == "r"  # s still waits for q
    assert queue.pop() is None
    queue.finish("q")
    queue.finish("r")
    assert queue.pop() == "s" and not queue.done()
    queue.finish("s")
    assert queue.done() and queue.ended == {"p": True, "q": True, "r": True, "s": True}


def test_a_failure_skips_everything_downstream_with_its_cause_and_the_rest_goes_on() -> None:
    queue = ReadyQueue(ORDER, DEPS, parallel=3)
    started = [queue.pop(), queue.pop(), queue.pop()]
    assert started == ["a", "e", "g"]
    skips = queue.finish("a", "dev.a failed")
    assert sorted(skips, key=lambda s: s.node) == [Skip("b", "dev.a failed"), Skip("c", "dev.a failed"),
                                                   Skip("d", "dev.a failed")]
    queue.finish("e")
    queue.finish("g")
    assert queue.pop() == "f"
    queue.finish("f")
    assert queue.pop() is None and queue.done()
    assert queue.skipped == {"b": "dev.a failed", "c": "dev.a failed", "d": "dev.a failed"}
    assert queue.ended == {"a": False, "b": False, "c": False, "d": False, "e": True, "f": True, "g": True}


def test_a_node_needed_by_two_failed_branches_is_skipped_once() -> None:
    queue = ReadyQueue(["x", "y", "z"], {"x": set(), "y": set(), "z": {"x", "y"}}, parallel=2)
    queue.pop(), queue.pop()
    assert queue.finish("x", "x failed") == [Skip("z", "x failed")]
    assert queue.finish("y", "y failed") == []
    assert queue.skipped == {"z": "x failed"}


def test_after_an_interruption_nothing_new_starts_and_running_nodes_finish() -> None:
    queue = ReadyQueue(ORDER, DEPS, parallel=2)
    assert [queue.pop(), queue.pop()] == ["a", "e"]
    queue.interrupt()
    assert not queue.done()  # two still running
    queue.finish("a")
    assert queue.pop() is None
    queue.finish("e")
    assert queue.done() and queue.interrupted
    assert queue.never_started() == ["g", "b", "f", "c", "d"]


def test_parallel_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ReadyQueue(ORDER, DEPS, parallel=0)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=25), st.integers(min_value=0, max_value=2**32 - 1),
       st.integers(min_value=1, max_value=4))
def test_random_graphs_come_out_in_dependency_order(size: int, seed: int, parallel: int) -> None:
    rnd = random.Random(seed)
    order = [f"n{i}" for i in range(size)]
    deps = {n: {order[j] for j in range(i) if rnd.random() < 0.3} for i, n in enumerate(order)}
    queue = ReadyQueue(order, deps, weights={n: rnd.uniform(0.1, 5) for n in order if rnd.random() < 0.5},
                       parallel=parallel)
    finished: list[str] = []
    while not queue.done():
        batch = []
        while (node := queue.pop()) is not None:
            assert deps[node] <= set(finished), f"{node} started before {deps[node] - set(finished)}"
            batch.append(node)
        assert 0 < len(batch) <= parallel
        for node in batch:
            queue.finish(node)
            finished.append(node)
    assert sorted(finished) == sorted(order)


# -- run_ready: the queue driven by a thread pool --------------------------------------------------------------------

def test_run_ready_runs_every_node_after_its_deps_within_the_limit() -> None:
    lock = threading.Lock()
    events: list[tuple[str, str]] = []
    active = peak = 0
    # The first two nodes meet here before either ends: both run at once, and a third start (a broken limit)
    # would be seen while they wait.
    together = threading.Barrier(2, timeout=30)

    def work(node: str) -> str:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
            events.append(("start", node))
            first_two = len(events) <= 2
        if first_two:
            together.wait()
        with lock:
            active -= 1
            events.append(("end", node))
        return node.upper()

    results, interrupted = run_ready(ReadyQueue(ORDER, DEPS, parallel=2), work, judge=lambda n, r: None)
    assert results == {n: n.upper() for n in ORDER} and not interrupted and peak == 2
    for node, needs in DEPS.items():
        for dep in needs:
            assert events.index(("end", dep)) < events.index(("start", node))


def test_run_ready_reports_skips_and_goes_on_with_independent_nodes() -> None:
    skipped: list[Skip] = []
    results, _ = run_ready(ReadyQueue(ORDER, DEPS, parallel=3), lambda n: n != "b",
                           judge=lambda n, ok: None if ok else f"{n} failed", on_skip=skipped.append)
    assert sorted(results) == ["a", "b", "e", "f", "g"]
    assert sorted(skipped, key=lambda s: s.node) == [Skip("c", "b failed"), Skip("d", "b failed")]


def test_run_ready_interrupted_by_work_starts_nothing_new() -> None:
    queue = ReadyQueue(ORDER, DEPS, parallel=1)

    def work(node: str) -> str:
        if node == "b":
            queue.interrupt()
        return node

    results, interrupted = run_ready(queue, work, judge=lambda n, r: None)
    assert interrupted and list(results) == ["a", "b"] and queue.never_started() == ["e", "g", "f", "c", "d"]


def test_ctrl_c_while_waiting_interrupts_and_lets_running_work_finish(monkeypatch: pytest.MonkeyPatch) -> None:
    real_wait = scheduler.wait
    calls = {"n": 0}

    def wait_then_ctrl_c(futures, return_when=FIRST_COMPLETED):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt
        return real_wait(futures, return_when=return_when)

    monkeypatch.setattr(scheduler, "wait", wait_then_ctrl_c)
    told: list[int] = []
    results, interrupted = run_ready(ReadyQueue(ORDER, DEPS, parallel=2), lambda n: n, judge=lambda n, r: None,
                                     on_interrupt=told.append)
    assert interrupted and told == [2] and sorted(results) == ["a", "e"]
