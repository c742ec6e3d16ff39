"""Policy checks against previews: every stack of a 200-context library checked (all rules, levels, waivers),
against the simulated preview of the same stacks (their programs run under mocks), measured in one run.

``check_s`` includes loading the catalogues the rules use (IAM actions, detect-secrets, botocore models) once;
``check_warm_s`` is a second evaluation over the same recorded resources."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.planning import generate
from ode import load_library
from ode.contracts import ContractLibrary
from ode.engines import StackSpec
from ode.policy import Policies
from ode.policy.environment import check_environment
from ode.policy.gate import StackRun, preview_stack

CONTEXTS = 200


def run(quick: bool = False) -> dict[str, Any]:
    del quick  # one pass already takes seconds; the sizes stay the same
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
            "stacks": len(result.stacks),
            "resources": resources,
            "preview_s": round(result.preview_s, 3),
            "check_s": round(result.check_s, 3),
            "check_warm_s": round(warm_s, 3),
            "check_per_stack_ms": round(1000 * warm_s / max(1, len(recorded)), 2),
            "check_over_preview": round(result.check_s / result.preview_s, 3) if result.preview_s else None,
            "total_s": round(total, 3),
            "violations": len(report.violations),
            "mandatory": sum(1 for v in report.violations if v.blocking),
            "unchecked": len(report.errors),
        }
