"""Scheduling: on random graphs of 200 stacks with random durations (milliseconds, the simulated engine), how close
ready-set scheduling comes to the critical path, and how much faster it is than level-by-level and sequential runs.

All three strategies drive the same engine with the same durations in the same run:

- ``ready-set``: the orchestrator (``up`` with enough parallelism);
- ``barrier``: the same engine, one topological level at a time, each level in parallel, waiting for the whole
  level before the next (what level-by-level tools do);
- ``sequential``: the orchestrator with ``parallel=1``.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import networkx as nx

from benchmarks.planning import generate
from ode import EnvGraph, load_library
from ode.clock import parse_iso
from ode.engines.simulated import SimulatedEngine
from ode.execution.orchestrator import Orchestrator
from ode.registry.sqlite import Registry

STACKS = 200
PARALLEL = 64
MIN_MS, MAX_MS = 10, 100


def critical_path(graph: EnvGraph, durations: dict[str, float]) -> float:
    """The longest chain of durations through the deploy edges: no schedule can be shorter."""
    finish: dict[str, float] = {}
    for c in graph.contexts:
        finish[c] = durations[c] + max((finish[p] for p in graph.producers_of(c)), default=0.0)
    return max(finish.values())


def ready_set(library: Any, state: Path, durations: dict[str, float], parallel: int) -> tuple[float, float]:
    """The makespan of the orchestrator's schedule (first stack's start to last stack's end, from the run's own
    times), and the wall time of the whole ``up`` call (graph, registry and lock included)."""
    engine = SimulatedEngine(library, state, delays=durations, run_programs=False)
    orchestrator = Orchestrator(library, Registry(state), engine, parallel=parallel)
    started = time.perf_counter()
    result = orchestrator.up("dev")
    wall = time.perf_counter() - started
    assert result.ok and len(result.stacks) == STACKS
    first = min(parse_iso(s.started_at) for s in result.stacks)  # type: ignore[type-var]
    last = max(parse_iso(s.finished_at) for s in result.stacks)  # type: ignore[type-var]
    return (last - first).total_seconds(), wall  # type: ignore[operator]


def barrier(library: Any, state: Path, durations: dict[str, float], parallel: int) -> float:
    """The makespan of level-by-level scheduling: the same engine calls, a barrier after each level."""
    graph = EnvGraph.resolve(library, "dev")
    engine = SimulatedEngine(library, state, delays=durations, run_programs=False)
    orchestrator = Orchestrator(library, Registry(state), engine, parallel=parallel)
    specs = {c: orchestrator.stack_spec("dev", c, None) for c in graph.contexts}
    started = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        for level in graph.levels():
            list(pool.map(lambda c: engine.up(specs[c]), level))
    return time.perf_counter() - started


def run(quick: bool = False) -> dict[str, Any]:
    graphs = 1 if quick else 5
    rows = []
    with tempfile.TemporaryDirectory(prefix="ode-bench-scheduling-") as tmp:
        for seed in range(graphs):
            root = Path(tmp) / f"g{seed}"
            generate(root / "contracts", STACKS, seed=seed + 11)
            library = load_library(root / "contracts")
            graph = EnvGraph.resolve(library, "dev")
            rng = random.Random(seed)
            durations = {c: rng.randint(MIN_MS, MAX_MS) / 1000 for c in graph.contexts}
            cp = critical_path(graph, durations)
            ours, wall = ready_set(library, root / "ready", durations, PARALLEL)
            level = barrier(library, root / "barrier", durations, PARALLEL)
            seq, _ = ready_set(library, root / "sequential", durations, 1)
            rows.append({"critical_path_s": cp, "ready_set_s": ours, "ready_set_wall_s": wall, "barrier_s": level,
                         "sequential_s": seq,
                         "depth": nx.dag_longest_path_length(nx.DiGraph(
                             [(p, c) for c in graph.contexts for p in graph.producers_of(c)]))})

    def median(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    return {
        "stacks": STACKS,
        "graphs": graphs,
        "parallel": PARALLEL,
        "durations_ms": [MIN_MS, MAX_MS],
        "critical_path_s": round(median("critical_path_s"), 3),
        "ready_set_makespan_s": round(median("ready_set_s"), 3),
        "ready_set_up_wall_s": round(median("ready_set_wall_s"), 3),
        "barrier_makespan_s": round(median("barrier_s"), 3),
        "sequential_makespan_s": round(median("sequential_s"), 3),
        "makespan_over_critical_path": round(statistics.median(r["ready_set_s"] / r["critical_path_s"]
                                                               for r in rows), 3),
        "barrier_over_ready_set": round(statistics.median(r["barrier_s"] / r["ready_set_s"] for r in rows), 2),
        "sequential_over_ready_set": round(statistics.median(r["sequential_s"] / r["ready_set_s"] for r in rows), 2),
        "goal_makespan_over_critical_path": 1.03,
    }
