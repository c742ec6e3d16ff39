"""Day two: refresh, drift detection and healing of an environment's deployed stacks.

    from ode.execution.drift import check_drift, heal, refresh

    report = check_drift(orchestrator, "dev")          # a refresh-preview of every deployed stack: changes nothing
    report.drifted                                      # the stacks whose cloud resources differ from their state
    report = heal(orchestrator, "dev")                  # check, then re-apply the drifted stacks in dependency order

A drift check asks the engine for a refresh that changes nothing (``engine.refresh(spec, preview_only=True)``) on
every deployed stack at once; its runner (:class:`~ode.execution.runners.DriftRunner`) records in the registry when
each stack was checked and what had drifted. A heal redeploys the drifted stacks even though their fingerprints match
(their inputs did not change, the cloud did), each through a :class:`~ode.execution.runners.HealRunner`; their
consumers are part of the run but redeploy only if a healed stack's outputs changed (the core's early cutoff). Each
heal is a run of its own in the registry (``drift --heal``) and is recorded against the stack; ``DriftDetected`` and
``StackHealed`` lifecycle events go out through ``orchestrator.events`` where it is set.

These functions are a facade over the execution core (:mod:`ode.execution.runners`), as the orchestrator is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..clock import iso
from ..status import DriftStatus, HealStatus, RunStatus, StackStatus
from . import runners
from .orchestrator import Orchestrator
from .planning import Planner, Scope
from .results import RunResult, StackOutcome
from .runs import Run

#: How a stack came out of a drift check.
CLEAN, DRIFTED, UNCHECKED = DriftStatus.CLEAN, DriftStatus.DRIFTED, DriftStatus.UNCHECKED
#: ... and of a heal.
HEALED, NOT_HEALED = HealStatus.HEALED, HealStatus.NOT_HEALED


@dataclass
class StackDrift:
    """One stack's drift: the resources whose cloud state differs from the stack's state, each with its changed
    properties (``{"type", "name", "urn", "diff": [{"path", "old", "new", "replaces"}]}``, secrets masked)."""

    stack: str
    context: str
    status: DriftStatus
    resources: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    checked_at: str | None = None
    #: After a heal: how the heal of this stack ended (``healed``, ``not healed``), and why.
    heal: HealStatus | None = None
    heal_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"stack": self.stack, "context": self.context, "status": self.status, "resources": self.resources,
                "error": self.error, "checked_at": self.checked_at, "heal": self.heal, "heal_error": self.heal_error}


@dataclass
class DriftReport:
    """The drift of an environment's deployed stacks, and of their heal when one was asked for."""

    env: str
    engine: str
    simulated: bool
    stacks: list[StackDrift] = field(default_factory=list)
    healed: RunResult | None = None
    interrupted: bool = False

    @property
    def drifted(self) -> list[StackDrift]:
        return [s for s in self.stacks if s.status == DRIFTED]

    @property
    def unchecked(self) -> list[StackDrift]:
        return [s for s in self.stacks if s.status == UNCHECKED]

    @property
    def exit_code(self) -> int:
        """0 when nothing drifted (or, after a heal, every drifted stack was healed) and every stack could be
        checked; 1 otherwise; 130 when interrupted."""
        if self.interrupted:
            return 130
        if self.unchecked:
            return 1
        if self.healed is None:
            return 1 if self.drifted else 0
        return 0 if self.healed.ok and all(s.heal == HEALED for s in self.drifted) else 1

    def to_dict(self) -> dict[str, Any]:
        return {"env": self.env, "engine": self.engine, "simulated": self.simulated, "ok": self.exit_code == 0,
                "drifted": [s.stack for s in self.drifted], "unchecked": [s.stack for s in self.unchecked],
                "stacks": [s.to_dict() for s in self.stacks],
                "heal": None if self.healed is None else self.healed.to_dict()}


def refresh(orchestrator: Orchestrator, env: str, contexts: Iterable[str] | None = None, *,
            force_unlock: bool = False) -> RunResult:
    """Refresh every deployed stack of ``env`` (or of ``contexts``) from the cloud, in parallel, under the
    environment's lock: each stack's state takes what the cloud holds (the next ``up`` puts the program's values
    back)."""
    planner = orchestrator.planner()
    scope = planner.deployed_scope(env, contexts)
    planner.refuse_rehearsal(env, scope.order)
    result = RunResult(env=env, engine=orchestrator.engine.name, operation="refresh",
                       simulated=orchestrator.simulated)
    with orchestrator.hold(env, "refresh", force_unlock=force_unlock) as run:
        ctx = orchestrator.context(env, run)
        outcomes, result.interrupted = runners.each(ctx, planner, scope, runners.RefreshRunner(ctx), "refresh",
                                                    parallel=orchestrator.parallel)
        for outcome in outcomes:
            got = outcome.result
            if outcome.status == StackStatus.SUCCEEDED and got is not None:
                result.stacks.append(StackOutcome(outcome.stack, outcome.context, StackStatus.SUCCEEDED,
                                                  changes=got.changes, duration_s=got.duration_s))
            else:
                error = outcome.error or outcome.reason or "not refreshed"
                result.stacks.append(StackOutcome(outcome.stack, outcome.context, StackStatus.FAILED,
                                                  error=error.splitlines()[0]))
        run.status = _ended(result.interrupted, result.ok)
    return result


def _check(orchestrator: Orchestrator, planner: Planner, scope: Scope, run: Run) -> DriftReport:
    """Check ``scope``'s stacks (the caller holds the lock): each one's runner records the check and announces
    what drifted; a stack the run never got to is recorded as not checked."""
    env = scope.env
    report = DriftReport(env=env, engine=orchestrator.engine.name, simulated=orchestrator.simulated)
    ctx = orchestrator.context(env, run)
    runner = runners.DriftRunner(ctx)
    outcomes, report.interrupted = runners.each(ctx, planner, scope, runner, "drift", parallel=orchestrator.parallel)
    for outcome in outcomes:
        got = outcome.result
        if outcome.status == StackStatus.SUCCEEDED and got is not None:
            resources = runners.drifted_resources(got)
            report.stacks.append(StackDrift(outcome.stack, outcome.context, DRIFTED if resources else CLEAN,
                                            resources, checked_at=outcome.finished_at))
            continue
        error = (outcome.error or outcome.reason or "not checked").splitlines()[0]
        checked = outcome.finished_at
        if outcome.status == StackStatus.SKIPPED:  # never started: its runner recorded nothing
            checked = iso(orchestrator.clock()) or ""
            runner.unchecked(env, outcome.context, error, checked)
        report.stacks.append(StackDrift(outcome.stack, outcome.context, UNCHECKED, error=error, checked_at=checked))
    return report


def check_drift(orchestrator: Orchestrator, env: str, contexts: Iterable[str] | None = None, *,
                force_unlock: bool = False) -> DriftReport:
    """A refresh-preview of every deployed stack of ``env`` (or of ``contexts``), in parallel: nothing changes in
    the cloud or in the stacks' state; the registry records when each stack was checked and what drifted."""
    planner = orchestrator.planner()
    scope = planner.deployed_scope(env, contexts)
    planner.refuse_rehearsal(env, scope.order)
    with orchestrator.hold(env, "drift", force_unlock=force_unlock) as run:
        report = _check(orchestrator, planner, scope, run)
        run.status = _ended(report.interrupted, not report.unchecked)
    return report


def heal(orchestrator: Orchestrator, env: str, contexts: Iterable[str] | None = None, *,
         force_unlock: bool = False) -> DriftReport:
    """Check ``env`` for drift, then redeploy the drifted stacks in dependency order, under one lock and one run
    (``drift --heal``): each drifted stack is forced (its fingerprint matches); its consumers redeploy only if its
    outputs changed. Each healed stack is recorded in the registry and announced (``StackHealed``)."""
    planner = orchestrator.planner()
    checked = planner.deployed_scope(env, contexts)
    planner.refuse_rehearsal(env, checked.order)
    with orchestrator.hold(env, "drift --heal", force_unlock=force_unlock) as run:
        report = _check(orchestrator, planner, checked, run)
        drifted = {s.context: len(s.resources) for s in report.drifted}
        if not drifted or report.interrupted:
            run.status = _ended(report.interrupted, not report.unchecked)
            return report
        graph = planner.graph(env)  # an environment made on demand: its recorded base and reused contexts
        deployed = {s.context for s in orchestrator.registry.stacks(env)}
        consumers = {d for c in drifted if c in graph for d in graph.descendants(c)} & deployed
        healed = orchestrator.up(env, sorted(set(drifted) | consumers), run=run, heal=drifted)
        report.healed = healed
        for item in report.drifted:
            outcome = next((s for s in healed.stacks if s.context == item.context), None)
            if outcome is not None and outcome.status == StackStatus.SUCCEEDED:
                item.heal = HEALED
            else:
                item.heal = NOT_HEALED
                item.heal_error = (outcome.error if outcome is not None else None) or "not run"
        run.status = _ended(healed.interrupted, report.exit_code == 0)
    return report


def _ended(interrupted: bool, ok: bool) -> RunStatus:
    """How a refresh, drift check or heal run is recorded."""
    return RunStatus.INTERRUPTED if interrupted else RunStatus.SUCCEEDED if ok else RunStatus.FAILED
