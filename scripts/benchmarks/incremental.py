"""Incremental deploys: a no-op ``up`` of a 50-stack environment (engine runs started, seconds), and after one
change to a producer that others consume (its settings: same outputs), how many stacks are redeployed."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.planning import generate
from ode import EnvGraph, load_library
from ode.engines.simulated import SimulatedEngine
from ode.execution.orchestrator import Orchestrator
from ode.registry.sqlite import Registry

STACKS = 50


class Counting(SimulatedEngine):
    """The simulated engine, counting the stack operations it is asked for."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.calls: list[str] = []

    def up(self, spec: Any, progress: Any = None) -> Any:
        self.calls.append(spec.stack_name)
        return super().up(spec, progress)


def _orchestrator(contracts: Path, state: Path) -> tuple[Orchestrator, Counting]:
    library = load_library(contracts)
    engine = Counting(library, state, run_programs=False)
    return Orchestrator(library, Registry(state), engine, parallel=8), engine


def run(quick: bool = False) -> dict[str, Any]:
    repeats = 3 if quick else 10
    with tempfile.TemporaryDirectory(prefix="ode-bench-incremental-") as tmp:
        contracts, state = Path(tmp) / "contracts", Path(tmp) / "state"
        generate(contracts, STACKS, seed=5)
        orchestrator, engine = _orchestrator(contracts, state)
        first = orchestrator.up("dev")
        assert first.ok and len(engine.calls) == STACKS
        noop_runs, noop_times = [], []
        for _ in range(repeats):
            orchestrator, engine = _orchestrator(contracts, state)
            started = time.perf_counter()
            result = orchestrator.up("dev")
            noop_times.append(time.perf_counter() - started)
            noop_runs.append(len(engine.calls))
            assert result.ok
        # A producer with consumers and no producers of its own but the bus: change its settings.
        graph = EnvGraph.resolve(load_library(contracts), "dev")
        producer = next(c for c in graph.contexts[1:] if graph.consumers_of(c) and graph.producers_of(c) == ["c0"])
        path = contracts / f"{producer}.yaml"
        doc = yaml.safe_load(path.read_text())
        doc["settings"]["memory_mb"] = 3008
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        orchestrator, engine = _orchestrator(contracts, state)
        changed = orchestrator.up("dev")
        assert changed.ok
    return {
        "stacks": STACKS,
        "noop_engine_runs": max(noop_runs),
        "noop_seconds": round(statistics.median(noop_times), 4),
        "changed_producer": producer,
        "changed_producer_consumers": len(graph.consumers_of(producer)),
        "redeployed_stacks": len(engine.calls),
        "redeployed": sorted(engine.calls),
        "goal_noop_engine_runs": 0,
    }
