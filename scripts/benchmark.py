#!/usr/bin/env python3
"""Benchmarks of the platform; prints its figures as JSON, one object per part.

    python scripts/benchmark.py [--quick] [--json] [--part planning] ...

``--quick`` keeps the whole run under a minute with the same sizes (fewer repetitions). Figures are measured in
this run, ratios included: nothing is compared with numbers remembered from another machine.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

#: part name -> module under scripts/benchmarks with ``run(quick: bool) -> dict``.
PARTS: dict[str, str] = {
    "planning": "benchmarks.planning",
    "scheduling": "benchmarks.scheduling",
    "incremental": "benchmarks.incremental",
    "registry": "benchmarks.registry",
    "policy": "benchmarks.policy",
    "cli": "benchmarks.cli",
    "executors": "benchmarks.executors",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, same sizes: under a minute")
    parser.add_argument("--json", action="store_true", help="print only the JSON")
    parser.add_argument("--part", action="append", choices=sorted(PARTS), help="run only these parts")
    args = parser.parse_args(argv)
    results: dict[str, object] = {}
    for name in args.part or list(PARTS):
        started = time.perf_counter()
        if not args.json:
            print(f"running {name} ...", file=sys.stderr, flush=True)
        results[name] = importlib.import_module(PARTS[name]).run(quick=args.quick)
        if not args.json:
            print(f"  {name} took {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
