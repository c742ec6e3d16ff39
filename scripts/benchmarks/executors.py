"""Executors: how close the ready-set scheduler comes to the best possible schedule on W bounded workers, and what
running each stack on a Dask worker costs.

- ``virtual``: on random 200-stack DAGs with stacks of 30 s to 15 min, the real :class:`ReadyQueue` driven in
  virtual time with W = 2, 4 and 8 workers (``parallel`` = W: a worker runs one stack at a time). The makespan is
  compared with the lower bound max(critical path, total work / W), and with a level-by-level plan (a CI matrix
  per level: every stack of a level at most W at a time, then the next level).
- ``dask``: a real run, ``ode up`` through ``dask+local://W`` (W worker processes on this machine, each stack run by
  ``ode stack run`` in a child of its worker), of 200 short stacks (the simulated engine, outputs from the
  contracts, each stack sleeping 50 ms), at W = 2 and 4. The makespan (first stack's start to last stack's end, the
  run's own times) against the same lower bound, and the overhead per stack in ms: what each stack costs a worker
  beyond its work (makespan x W - total work) / stacks: a process start, ode's imports, the library, the policy gate,
  the lease, the registry round trips on the coordinator.
"""

from __future__ import annotations

import heapq
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from ode.clock import parse_iso
from ode.execution.scheduler import ReadyQueue

STACKS = 200
GRAPHS = 20
WORKERS = (2, 4, 8)
MIN_S, MAX_S = 30.0, 900.0
DASK_WORKERS = (2, 4)
SHORT_S = 0.05


def random_dag(rng: random.Random, n: int) -> tuple[list[str], dict[str, set[str]]]:
    """``n`` nodes in topological order, each needing up to three earlier ones (nearer ones likelier)."""
    order = [f"s{i}" for i in range(n)]
    deps: dict[str, set[str]] = {}
    for i, node in enumerate(order):
        k = min(i, rng.choice([0, 1, 1, 2, 2, 3]))
        deps[node] = {order[max(0, i - 1 - int(rng.expovariate(1 / 20)) % i)] for _ in range(k)} if i else set()
    return order, deps


def critical_path(order: list[str], deps: dict[str, set[str]], durations: dict[str, float]) -> float:
    finish: dict[str, float] = {}
    for node in order:
        finish[node] = durations[node] + max((finish[d] for d in deps[node]), default=0.0)
    return max(finish.values())


def virtual_makespan(order: list[str], deps: dict[str, set[str]], durations: dict[str, float], workers: int) -> float:
    """The real queue, ``workers`` at a time, in virtual time: what the scheduler does with stacks that take
    ``durations`` (known to it from their last runs, as its priorities use)."""
    queue = ReadyQueue(order, deps, weights=durations, parallel=workers)
    now = 0.0
    running: list[tuple[float, str]] = []
    while True:
        node = queue.pop()
        while node is not None:
            heapq.heappush(running, (now + durations[node], node))
            node = queue.pop()
        if not running:
            return now
        now, node = heapq.heappop(running)
        queue.finish(node)


def levels_makespan(order: list[str], deps: dict[str, set[str]], durations: dict[str, float], workers: int) -> float:
    """A level-by-level plan: each level's stacks on ``workers`` (longest first), the next level after all."""
    level: dict[str, int] = {}
    for node in order:
        level[node] = 1 + max((level[d] for d in deps[node]), default=-1)
    total = 0.0
    for depth in range(max(level.values()) + 1):
        lanes = [0.0] * workers
        for node in sorted((n for n in order if level[n] == depth), key=lambda n: -durations[n]):
            lanes[lanes.index(min(lanes))] += durations[node]
        total += max(lanes)
    return total


def virtual(graphs: int) -> dict[str, Any]:
    rows: dict[int, list[tuple[float, float]]] = {w: [] for w in WORKERS}
    for seed in range(graphs):
        rng = random.Random(1000 + seed)
        order, deps = random_dag(rng, STACKS)
        durations = {n: rng.uniform(MIN_S, MAX_S) for n in order}
        cp, work = critical_path(order, deps, durations), sum(durations.values())
        for w in WORKERS:
            bound = max(cp, work / w)
            rows[w].append((virtual_makespan(order, deps, durations, w) / bound,
                             levels_makespan(order, deps, durations, w) / bound))
    return {f"W={w}": {"makespan_over_bound_median": round(statistics.median(r[0] for r in rows[w]), 4),
                       "makespan_over_bound_max": round(max(r[0] for r in rows[w]), 4),
                       "levels_over_bound_median": round(statistics.median(r[1] for r in rows[w]), 3)}
            for w in WORKERS} | {"graphs": graphs, "stacks": STACKS, "stack_s": [MIN_S, MAX_S], "goal": 1.05}


def write_library(root: Path, n: int, seed: int = 5) -> tuple[list[str], dict[str, set[str]]]:
    """``n`` data stores, each reading up to three earlier ones' tables: short stacks with a real graph."""
    rng = random.Random(seed)
    order, deps = random_dag(rng, n)
    root.mkdir(parents=True, exist_ok=True)
    (root / "environments.yaml").write_text(yaml.safe_dump({"project": "bench", "environments": {
        "dev": {"account": "111111111111", "region": "us-east-1"}}}))
    for node in order:
        doc: dict[str, Any] = {"context": node, "owner": "team", "version": "1.0.0", "component": "data-store",
                               "provides": {"table": {"kind": "table", "version": "1.0.0"}}}
        if deps[node]:
            doc["consumes"] = [{"context": d, "interface": "table", "access": "read"} for d in sorted(deps[node])]
        (root / f"{node}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return order, deps


def dask_run(root: Path, workers: int, order: list[str], deps: dict[str, set[str]]) -> dict[str, Any]:
    from ode.workspace import open_workspace

    state = root / f"state-w{workers}"
    with open_workspace(contracts=root / "contracts", state_dir=state, engine="simulated", parallel=workers * 2,
                        executor=f"dask+local://{workers}", simulate_delay=(f"*={SHORT_S}",)) as ws:
        started = time.perf_counter()
        orchestrator = ws.orchestrator("dev")  # starts the cluster
        opened = time.perf_counter()
        result = orchestrator.up("dev")
        wall = time.perf_counter() - opened
    assert result.ok and len(result.stacks) == len(order), [s.error for s in result.stacks if s.error][:3]
    first = min(parse_iso(s.started_at) for s in result.stacks)  # type: ignore[type-var]
    last = max(parse_iso(s.finished_at) for s in result.stacks)  # type: ignore[type-var]
    makespan = (last - first).total_seconds()  # type: ignore[operator]
    durations = dict.fromkeys(order, SHORT_S)
    bound = max(critical_path(order, deps, durations), SHORT_S * len(order) / workers)
    return {"workers": workers, "makespan_s": round(makespan, 2), "bound_s": round(bound, 2),
            "makespan_over_bound": round(makespan / bound, 1),
            "overhead_per_stack_ms": round((makespan * workers - SHORT_S * len(order)) / len(order) * 1000),
            "up_wall_s": round(wall, 2), "cluster_start_s": round(opened - started, 2),
            "workers_seen": len({s.worker["pid"] for s in result.stacks if s.worker})}


def run(quick: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"virtual": virtual(5 if quick else GRAPHS)}
    stacks = 24 if quick else STACKS
    os.environ["ODE_SIMULATE_PROGRAMS"] = "0"  # the workers inherit it: outputs from the contracts
    with tempfile.TemporaryDirectory(prefix="ode-bench-executors-") as tmp:
        root = Path(tmp)
        order, deps = write_library(root / "contracts", stacks)
        out["dask"] = {"stacks": stacks, "stack_s": SHORT_S, "cores": os.cpu_count(),
                       "runs": [dask_run(root, w, order, deps) for w in DASK_WORKERS]}
    return out
