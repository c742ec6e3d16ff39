"""Registry backends: round trips per stack of a first ``up`` and of a no-op ``up`` of 50 stacks, for SQLite and for
DynamoDB (on moto's server, started here on 127.0.0.1), and the no-op ``up`` time over each.

The orchestrator is opened as ``ode up --registry URL`` opens it, through :mod:`ode.workspace` (simulated engine
without programs and without the policy gate, so the registry's share of the time shows); it calls nothing but
registry methods, so it takes either backend as it is. Round trips:

- ``registry_calls``: calls of the registry's methods (the same for every backend: what an ``up`` asks of it);
- ``round_trips``: what those cost the store. SQLite: one transaction or query per call (a local file, no network).
  DynamoDB: API requests, counted by botocore's ``before-call`` event (a ``Query`` page or a transaction is one).

moto's server runs in this process (a thread): DynamoDB times include its request handling and share the GIL, so
they are an upper bound of the client's own cost, not a figure for the real service.
"""

from __future__ import annotations

import logging
import os
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from moto.server import ThreadedMotoServer

from benchmarks.planning import generate
from ode.registry import RegistryBackend
from ode.registry.dynamodb import DynamoDBRegistry, create_table
from ode.workspace import open_workspace

STACKS = 50
PARALLEL = 8
REGION = "us-east-1"


class CountingRegistry:
    """Passes every call on to ``inner`` and counts it by method."""

    def __init__(self, inner: RegistryBackend):
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not callable(target):
            return target

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.calls[name] += 1
            return target(*args, **kwargs)

        return counted


def _round_trips(registry: RegistryBackend, counting: CountingRegistry) -> int:
    if isinstance(registry, DynamoDBRegistry):
        return registry.api_calls
    return sum(counting.calls.values())


def _measure(url: str, contracts: Path, state: Path, repeats: int) -> dict[str, Any]:
    os.environ["ODE_SIMULATE_PROGRAMS"] = "0"
    workspace = open_workspace(contracts=contracts, state_dir=state, registry=url, engine="simulated",
                               parallel=PARALLEL, ci=False)
    orchestrator = workspace.orchestrator()
    orchestrator.engine.gate = None  # type: ignore[attr-defined]  # the policy rules are the policy part's figure
    registry = orchestrator.registry
    counting = CountingRegistry(registry)
    orchestrator.registry = counting  # type: ignore[assignment]

    def one_up(expect: str) -> tuple[float, int, int, dict[str, int]]:
        counting.calls.clear()
        trips_before = _round_trips(registry, counting) if isinstance(registry, DynamoDBRegistry) else 0
        started = time.perf_counter()
        result = orchestrator.up("dev")
        elapsed = time.perf_counter() - started
        assert result.ok and len(result.stacks) == STACKS and {s.status for s in result.stacks} == {expect}, \
            result.counts()
        calls = sum(counting.calls.values())
        trips = _round_trips(registry, counting) - trips_before
        return elapsed, calls, trips, dict(counting.calls)

    first_s, first_calls, first_trips, first_by = one_up("succeeded")
    noop = [one_up("unchanged") for _ in range(repeats)]
    noop_s = statistics.median(n[0] for n in noop)
    _, noop_calls, noop_trips, noop_by = noop[-1]
    workspace.close()
    return {
        "first_up": {"seconds": round(first_s, 4), "registry_calls_per_stack": round(first_calls / STACKS, 2),
                     "round_trips_per_stack": round(first_trips / STACKS, 2), "calls": first_by},
        "noop_up": {"seconds_median": round(noop_s, 4), "repeats": repeats,
                    "registry_calls_per_stack": round(noop_calls / STACKS, 2),
                    "round_trips_per_stack": round(noop_trips / STACKS, 2), "calls": noop_by},
    }


def run(quick: bool = False) -> dict[str, Any]:
    repeats = 3 if quick else 7
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_DEFAULT_REGION", "ODE_SIMULATE_PROGRAMS")}
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        # Only the local server can be reached: fake credentials, the standard endpoint variable.
        os.environ.update({"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "bench",
                           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": REGION})
        with tempfile.TemporaryDirectory(prefix="ode-bench-registry-") as tmp:
            root = Path(tmp)
            generate(root / "contracts", STACKS)
            create_table("ode-bench", region=REGION)
            sqlite = _measure(f"sqlite:///{root / 'sqlite'}", root / "contracts", root / "state-sqlite", repeats)
            dynamodb = _measure(f"dynamodb://ode-bench?region={REGION}", root / "contracts", root / "state-ddb",
                                repeats)
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return {
        "stacks": STACKS, "parallel": PARALLEL, "sqlite": sqlite, "dynamodb_on_moto": dynamodb,
        "noop_up_dynamodb_over_sqlite": round(dynamodb["noop_up"]["seconds_median"]
                                              / sqlite["noop_up"]["seconds_median"], 2),
    }
