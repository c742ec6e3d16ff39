"""The ready-set scheduler alone: which node starts next, at most how many at once, and what a failure skips.

    from ode.execution.scheduler import ReadyQueue, run_ready

    queue = ReadyQueue(order, deps, weights=last_durations, parallel=8)
    results, interrupted = run_ready(queue, work, judge=lambda node, result: None if result.ok else "failed")

``order`` is a topological order of the nodes (producers before consumers) and ``deps[n]`` the nodes ``n`` waits
for. A node is *ready* once every one of its deps ended well; the ready node with the highest priority starts
first. Priority is the critical path: the longest chain of work (``weights``, the last known durations; the median
of those for a node without one) that waits on the node, ties broken by ``order``. There is no barrier between
levels. When a node ends badly, every node that needs it, directly or not, is skipped with the cause. After
:meth:`ReadyQueue.interrupt` nothing new starts; running nodes finish.

The queue knows nothing of registries, engines or stacks: nodes are names, work is any callable. Like dbt's
``graph/queue.py``, each method says which lock it takes and what it mutates. The queue's one lock,
``ReadyQueue.lock``, guards all of its state; public methods take it themselves (it is re-entrant, so a caller may
hold it around several calls to see them as one step), private ``_`` methods expect it held.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TypeVar

#: Stacks mostly wait on cloud APIs: more than the cores, but few enough not to hit API rate limits. The one default
#: of every front end (``--parallel``, ``ODE_PARALLEL``, the workspace, the orchestrator).
DEFAULT_PARALLEL = 8

R = TypeVar("R")


@dataclass(frozen=True)
class Skip:
    """A node that will not run because a node it needs ended badly; ``cause`` says which and how."""

    node: str
    cause: str


class ReadyQueue:
    """The frontier of a dependency graph under a parallel limit. See the module's docstring."""

    def __init__(self, order: Sequence[str], deps: Mapping[str, Iterable[str]], *,
                 weights: Mapping[str, float] | None = None, parallel: int = 1):
        """Build the queue. Takes no lock (nothing is shared yet); sets every field.

        ``deps`` must name a set for every node of ``order``, with nodes of ``order`` only.
        """
        if parallel < 1:
            raise ValueError(f"parallel must be at least 1, not {parallel}")
        self.lock = threading.RLock()
        self.order = list(order)
        self.parallel = parallel
        self.dependents: dict[str, list[str]] = {n: [] for n in self.order}
        self._waiting_on = {n: len(set(deps[n])) for n in self.order}
        for n in self.order:
            for d in set(deps[n]):
                self.dependents[d].append(n)
        self.priority = self._priorities(weights or {})
        self._ready = [(self.priority[n], n) for n in self.order if self._waiting_on[n] == 0]
        heapq.heapify(self._ready)
        self.running: set[str] = set()
        #: Nodes that ended (well, badly or skipped): node -> True when it ended well.
        self.ended: dict[str, bool] = {}
        self.skipped: dict[str, str] = {}
        self.interrupted = False

    def _priorities(self, weights: Mapping[str, float]) -> dict[str, tuple[float, int]]:
        """Critical path first: the longest weighted chain that waits on each node; ties by ``order``. Called from
        ``__init__`` only; reads ``dependents``, mutates nothing."""
        known = {n: w for n, w in weights.items() if w}
        unit = sorted(known.values())[len(known) // 2] if known else 1.0
        rank: dict[str, float] = {}
        for n in reversed(self.order):
            rank[n] = known.get(n, unit) + max((rank[d] for d in self.dependents[n]), default=0.0)
        return {n: (-rank[n], i) for i, n in enumerate(self.order)}

    def pop(self) -> str | None:
        """The next node to start, now marked running; None when none may start now (no node is ready, the
        parallel limit is reached, or the queue was interrupted). Takes ``lock``; mutates the ready heap and
        ``running``."""
        with self.lock:
            while self._ready and len(self.running) < self.parallel and not self.interrupted:
                _, node = heapq.heappop(self._ready)
                if node in self.ended:
                    continue
                self.running.add(node)
                return node
            return None

    def finish(self, node: str, cause: str | None = None) -> list[Skip]:
        """Record that a running ``node`` ended: well when ``cause`` is None (its dependents with nothing else to
        wait for become ready), else badly (every node that needs it, directly or not, is skipped with ``cause``).
        Returns the nodes skipped now. Takes ``lock``; mutates ``running``, ``ended``, ``skipped``, the ready
        heap and the wait counts."""
        with self.lock:
            self.running.discard(node)
            self.ended[node] = cause is None
            if cause is None:
                for d in self.dependents[node]:
                    self._waiting_on[d] -= 1
                    if self._waiting_on[d] == 0 and d not in self.ended:
                        heapq.heappush(self._ready, (self.priority[d], d))
                return []
            return self._skip_from(node, cause)

    def _skip_from(self, failed: str, cause: str) -> list[Skip]:
        """Skip everything downstream of ``failed`` not ended yet. Expects ``lock`` held; mutates ``ended`` and
        ``skipped``."""
        skips: list[Skip] = []
        todo = list(self.dependents[failed])
        while todo:
            n = todo.pop()
            if n in self.ended:
                continue
            self.ended[n] = False
            self.skipped[n] = cause
            skips.append(Skip(n, cause))
            todo.extend(self.dependents[n])
        return skips

    def interrupt(self) -> None:
        """Start nothing more; running nodes may still :meth:`finish`. Takes ``lock``; sets ``interrupted``."""
        with self.lock:
            self.interrupted = True

    def done(self) -> bool:
        """True when nothing runs and nothing more can start. Takes ``lock``; mutates nothing."""
        with self.lock:
            return not self.running and (self.interrupted or not any(n not in self.ended for _, n in self._ready))

    def never_started(self) -> list[str]:
        """Nodes that neither ran nor were skipped (an interrupted run), in ``order``. Takes ``lock``; mutates
        nothing."""
        with self.lock:
            return [n for n in self.order if n not in self.ended and n not in self.running]


def run_ready(queue: ReadyQueue, work: Callable[[str], R], *, judge: Callable[[str, R], str | None],
              on_skip: Callable[[Skip], None] = lambda skip: None,
              on_interrupt: Callable[[int], None] = lambda running: None,
              thread_name_prefix: str = "ode-stack") -> tuple[dict[str, R], bool]:
    """Run ``work(node)`` on every node ``queue`` lets start, ``queue.parallel`` threads at once, until nothing
    more can start. ``judge(node, result)`` is called in this thread as each node ends: None when it ended well,
    else the cause its dependents are skipped with (each reported to ``on_skip``). Ctrl-C while waiting interrupts
    the queue (``on_interrupt(number running)``) and lets running work finish. Returns the results by node and
    whether the run was interrupted.

    Called from one thread (the one that receives Ctrl-C); takes ``queue.lock`` through the queue's methods only.
    """
    results: dict[str, R] = {}
    running: dict[Future[R], str] = {}
    pool = ThreadPoolExecutor(max_workers=queue.parallel, thread_name_prefix=thread_name_prefix)
    try:
        while True:
            node = queue.pop()
            while node is not None:
                running[pool.submit(work, node)] = node
                node = queue.pop()
            if not running:
                break
            try:
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            except KeyboardInterrupt:
                queue.interrupt()
                on_interrupt(len(running))
                continue
            for fut in done:
                node = running.pop(fut)
                result = fut.result()
                results[node] = result
                for skip in queue.finish(node, judge(node, result)):
                    on_skip(skip)
    finally:
        pool.shutdown(wait=True)
    return results, queue.interrupted
