"""Policy checks against previews: every stack of a 200-context library checked (all rules, levels, waivers),
against the simulated preview of the same stacks (their programs run under mocks, side by side in worker processes),
measured in one run.

``preview_s`` is the wall time of the previews (they overlap), ``program_s`` the sum of each program's own time;
``check_s`` includes loading the catalogues the rules use (IAM actions, detect-secrets, botocore models) once;
``check_warm_s`` is a second evaluation over the same recorded resources. ``total_s`` is the whole check, whose goal
is 20 s here."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.planning import generate
from ode import load_library
from ode.contracts import ContractLibrary
from ode.engines import StackSpec
from ode.engines.simulated import program_workers
from ode.policy import Policies
from ode.policy.environment import check_environment
from ode.policy.gate import StackRun, preview_stack

CONTEXTS = 200


def run(quick: bool = False) -> dict[str, Any]:
    del quick  # one pass already takes seconds; the sizes stay the same
    load = round(os.getloadavg()[0], 2)  # other work on the machine: how quiet it was when the run started
    with tempfile.TemporaryDirectory(prefix="ode-bench-policy-") as tmp:
        contracts = Path(tmp) / "contracts"
        generate(contracts, CONTEXTS, seed=13)
        library = load_library(contracts, "dev")
        recorded: dict[str, tuple[StackSpec, StackRun]] = {}

        def preview(spec: StackSpec, lib: ContractLibrary) -> StackRun:
            run_ = preview_stack(spec, lib)
            recorded[spec.context] = (spec, run_)
            return run_

        started = time.perf_counter()
        result = check_environment(library, "dev", preview=preview)
        total = time.perf_counter() - started
        policies = Policies(library, "dev")
        warm = time.perf_counter()
        for context, (spec, run_) in recorded.items():
            policies.check_stack(context, run_.resources, spec.upstream)
        warm_s = time.perf_counter() - warm
        report = result.report
        resources = sum(len(r.resources) for _, r in recorded.values())
        return {
            "load_average_1min": load,
            "stacks": len(result.stacks),
            "resources": resources,
            "workers": program_workers(len(result.stacks)),
            "preview_s": round(result.preview_s, 3),
            "program_s": round(sum(r.seconds for _, r in recorded.values()), 3),
            "check_s": round(result.check_s, 3),
            "check_warm_s": round(warm_s, 3),
            "check_per_stack_ms": round(1000 * warm_s / max(1, len(recorded)), 2),
            "check_over_preview": round(result.check_s / result.preview_s, 3) if result.preview_s else None,
            "total_s": round(total, 3),
            "goal_total_s": 20.0,
            "violations": len(report.violations),
            "mandatory": sum(1 for v in report.violations if v.blocking),
            "unchecked": len(report.errors),
        }
