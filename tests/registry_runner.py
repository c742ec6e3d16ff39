"""A CI runner in miniature, run as its own process by the registry tests: its own state dir, a shared registry.

    python tests/registry_runner.py --registry URL --state DIR COMMAND [ARGS]

Commands: ``create ENV [--ttl T] [--hold DIR]`` (create an environment made on demand from the sample library;
with ``--hold``, then keep its lock until DIR/release exists, having written DIR/locked), ``list``, ``destroy ENV``,
``gc [--later SECONDS]`` and ``lease ENV TTL READY`` (take a lease with TTL seconds, write READY, then sleep until
killed). An ode error prints one line on stderr and exits with the error's exit status, as the CLI does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import timedelta
from pathlib import Path

from ode.clock import utcnow
from ode.contracts import load_library
from ode.engines.simulated import SimulatedEngine
from ode.errors import OdeError
from ode.execution.ephemeral import EphemeralEnvironments
from ode.execution.orchestrator import Orchestrator
from ode.registry import open_registry
from ode.registry.dynamodb import DynamoDBRegistry

SAMPLE = Path(__file__).resolve().parent.parent / "contracts"
#: How long a held lock or lease waits for its release at most: a runner never outlives its test by much.
MAX_HOLD_S = 60.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--registry", required=True)
    parser.add_argument("--state", required=True)
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create")
    create.add_argument("env")
    create.add_argument("--ttl", default="8h")
    create.add_argument("--hold")
    sub.add_parser("list")
    destroy = sub.add_parser("destroy")
    destroy.add_argument("env")
    gc = sub.add_parser("gc")
    gc.add_argument("--later", type=float, default=0.0)
    lease = sub.add_parser("lease")
    lease.add_argument("env")
    lease.add_argument("ttl", type=float)
    lease.add_argument("ready")
    args = parser.parse_args(argv)

    state = Path(args.state)
    registry = open_registry(args.registry, state)
    library = load_library(SAMPLE)
    later = timedelta(seconds=getattr(args, "later", 0.0))
    engine = SimulatedEngine(library, state, run_programs=False)
    orchestrator = Orchestrator(library, registry, engine, parallel=4)  # type: ignore[arg-type]
    service = EphemeralEnvironments(library, registry, orchestrator,  # type: ignore[arg-type]
                                    clock=lambda: utcnow() + later)
    try:
        if args.command == "create":
            record, result = service.create(args.env, ttl=args.ttl, reuse=[])
            print(json.dumps({"env": record.name, "ok": result.ok, "stacks": len(result.stacks)}))
            if args.hold:
                hold = Path(args.hold)
                run_id = registry.begin_run(args.env, "hold", engine.name)
                (hold / "locked").write_text(str(run_id))
                deadline = time.monotonic() + MAX_HOLD_S
                while not (hold / "release").exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
                registry.end_run(run_id, args.env, "succeeded")
            return 0 if result.ok else 1
        if args.command == "list":
            print(json.dumps([r.name for r in service.list()]))
            return 0
        if args.command == "destroy":
            result = service.destroy(args.env)
            print(json.dumps({"env": args.env, "ok": result.ok, "destroyed": len(result.stacks)}))
            return result.exit_code
        if args.command == "gc":
            report = service.gc()
            print(json.dumps({"destroyed": [r.name for r, _ in report.destroyed],
                              "kept": [r.name for r in report.kept]}))
            return 0 if report.ok else 1
        if args.command == "lease":
            assert isinstance(registry, DynamoDBRegistry), "leases are a DynamoDB registry's locks"
            registry.lease_s = args.ttl
            run_id = registry.begin_run(args.env, "up", engine.name)
            Path(args.ready).write_text(str(run_id))
            time.sleep(MAX_HOLD_S)  # the test kills this process long before
            return 0
    except OdeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        registry.close()
    return 2


if __name__ == "__main__":
    sys.exit(main())
