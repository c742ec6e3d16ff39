"""Day two: refresh, drift detection and healing of an environment's deployed stacks.

    from ode.execution.drift import check_drift, heal, refresh

    report = check_drift(orchestrator, "dev")          # a refresh-preview of every deployed stack: changes nothing
    report.drifted                                      # the stacks whose cloud resources differ from their state
    report = heal(orchestrator, "dev")                  # check, then re-apply the drifted stacks in dependency order

A drift check asks the engine for a refresh that changes nothing (``engine.refresh(spec, preview_only=True)``) on
every deployed stack at once, through the orchestrator's scheduler (:meth:`Orchestrator.run_each`), and records in
the registry when each stack was checked and what had drifted. A heal redeploys the drifted stacks even though their
fingerprints match (their inputs did not change, the cloud did); their consumers are part of the run but redeploy
only if a healed stack's outputs changed (the orchestrator's early cutoff). Each heal is a run of its own in the
registry (``drift --heal``) and is recorded against the stack; ``DriftDetected`` and ``StackHealed`` lifecycle events
go out through ``orchestrator.events`` where it is set.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..clock import iso
from ..engines.protocol import EngineError, StackResult
from ..errors import OdeError, UsageError
from ..publishing.lifecycle_events import DRIFT_DETECTED, STACK_HEALED
from ..status import DriftStatus, HealStatus, RunStatus, StackStatus
from .orchestrator import Orchestrator
from .results import RunResult, StackOutcome

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


def _deployed(orchestrator: Orchestrator, env: str, contexts: Iterable[str] | None) -> list[str]:
    """The contexts of ``env`` deployed with success (of ``contexts`` when given), in deploy order. A context asked
    for that is not deployed is a :class:`UsageError`."""
    records = {s.context: s for s in orchestrator.registry.stacks(env)}
    if not records and orchestrator.registry.environment(env) is None:
        orchestrator.library.environment(env)  # an unknown name: UnknownEnvironmentError naming the known ones
    deployed = {c for c, r in records.items()
                if r.status == StackStatus.SUCCEEDED and c in orchestrator.library.contexts}
    if contexts is not None:
        wanted = set(contexts)
        missing = sorted(wanted - deployed)
        if missing:
            raise UsageError(f"--contexts: {', '.join(missing)} not deployed in {env}")
        deployed = wanted
    position = orchestrator.positions(_base(orchestrator, env) or env)
    return sorted(deployed, key=lambda c: (position.get(c, len(position)), c))


def _base(orchestrator: Orchestrator, env: str) -> str | None:
    record = orchestrator.registry.environment(env)
    return record.base if record is not None and record.ephemeral else None


def _resources(result: StackResult) -> list[dict[str, Any]]:
    """The drifted resources of a refresh-preview, as reports and the registry keep them (no inputs)."""
    return [{"type": r.type, "name": r.name, "urn": r.urn, "op": r.op, "diff": [d.to_dict() for d in r.diff]}
            for r in result.resources if r.op != "same"]


def _refresh_all(orchestrator: Orchestrator, env: str, order: list[str], *, preview_only: bool,
                 command: str) -> tuple[dict[str, StackResult | EngineError | OdeError], bool]:
    """Refresh (or refresh-preview) every stack of ``order`` at once through the orchestrator's scheduler.
    Returns each context's result or error, and whether the run was interrupted."""
    base = _base(orchestrator, env)
    found: dict[str, StackResult | EngineError | OdeError] = {}
    lock = threading.Lock()

    def work(context: str) -> StackOutcome:
        stack = f"{env}.{context}"
        started = orchestrator.clock()
        t0 = time.perf_counter()
        spec = orchestrator.stack_spec(env, context, base)  # the same spec `up` builds, less upstream
        try:
            res = orchestrator.engine.refresh(spec, orchestrator.progress, preview_only=preview_only)
        except (EngineError, OdeError) as exc:
            with lock:
                found[context] = exc
            return StackOutcome(stack, context, StackStatus.FAILED, iso(started), iso(orchestrator.clock()),
                                time.perf_counter() - t0, error=str(exc).splitlines()[0])
        with lock:
            found[context] = res
        drifted = [r for r in res.resources if r.op != "same"]
        reason = (f"{len(drifted)} resource(s) drifted" if drifted else "no drift") if preview_only else None
        return StackOutcome(stack, context, StackStatus.SUCCEEDED, iso(started), iso(orchestrator.clock()),
                            time.perf_counter() - t0, res.outputs, res.secret_outputs, reason=reason,
                            changes=res.changes)

    outcomes, interrupted = orchestrator.run_each(env, command, order, {c: set() for c in order}, work)
    for outcome in outcomes:  # a stack the scheduler never ran (interrupted) or whose work escaped: its error
        if outcome.context not in found:
            found[outcome.context] = OdeError(outcome.error or outcome.reason or "not checked")
    return found, interrupted


def refresh(orchestrator: Orchestrator, env: str, contexts: Iterable[str] | None = None, *,
            force_unlock: bool = False) -> RunResult:
    """Refresh every deployed stack of ``env`` (or of ``contexts``) from the cloud, in parallel, under the
    environment's lock: each stack's state takes what the cloud holds (the next ``up`` puts the program's values
    back)."""
    order = _deployed(orchestrator, env, contexts)
    result = RunResult(env=env, engine=orchestrator.engine.name, operation="refresh",
                       simulated=orchestrator.simulated)
    with orchestrator.hold(env, "refresh", force_unlock=force_unlock) as run:
        found, result.interrupted = _refresh_all(orchestrator, env, order, preview_only=False, command="refresh")
        for context in order:
            got = found[context]
            stack = f"{env}.{context}"
            if isinstance(got, StackResult):
                result.stacks.append(StackOutcome(stack, context, StackStatus.SUCCEEDED, changes=got.changes,
                                                  duration_s=got.duration_s))
            else:
                result.stacks.append(StackOutcome(stack, context, StackStatus.FAILED, error=str(got).splitlines()[0]))
        run.status = _ended(result.interrupted, result.ok)
    return result


def _emit(orchestrator: Orchestrator, detail_type: str, detail: dict[str, Any]) -> None:
    """Send a lifecycle event where they are configured; never fails the command."""
    events = getattr(orchestrator, "events", None)
    if events is None:
        return
    try:
        events.emit(detail_type, detail)
    except Exception:  # noqa: BLE001 - an event must never fail the check or the heal it reports
        pass


def _check(orchestrator: Orchestrator, env: str, order: list[str], command: str) -> DriftReport:
    """Check ``order``'s stacks (the caller holds the lock), record each check and announce what drifted."""
    report = DriftReport(env=env, engine=orchestrator.engine.name, simulated=orchestrator.simulated)
    found, report.interrupted = _refresh_all(orchestrator, env, order, preview_only=True, command=command)
    for context in order:
        got = found[context]
        stack = f"{env}.{context}"
        checked = iso(orchestrator.clock()) or ""
        if isinstance(got, StackResult):
            resources = _resources(got)
            item = StackDrift(stack, context, DRIFTED if resources else CLEAN, resources, checked_at=checked)
            orchestrator.registry.record_drift_check(env, context, checked_at=checked, drifted=resources)
            if resources:
                _emit(orchestrator, DRIFT_DETECTED, {
                    "environment": env, "context": context, "stack": stack, "engine": orchestrator.engine.name,
                    "simulated": orchestrator.simulated,
                    "resources": [{"type": r["type"], "name": r["name"],
                                   "properties": [d["path"] for d in r["diff"]]} for r in resources]})
        else:
            error = str(got).splitlines()[0] if str(got) else type(got).__name__
            item = StackDrift(stack, context, UNCHECKED, error=error, checked_at=checked)
            orchestrator.registry.record_drift_check(env, context, checked_at=checked, drifted=None, error=error)
        report.stacks.append(item)
    return report


def check_drift(orchestrator: Orchestrator, env: str, contexts: Iterable[str] | None = None, *,
                force_unlock: bool = False) -> DriftReport:
    """A refresh-preview of every deployed stack of ``env`` (or of ``contexts``), in parallel: nothing changes in
    the cloud or in the stacks' state; the registry records when each stack was checked and what drifted."""
    order = _deployed(orchestrator, env, contexts)
    with orchestrator.hold(env, "drift", force_unlock=force_unlock) as run:
        report = _check(orchestrator, env, order, "drift")
        run.status = _ended(report.interrupted, not report.unchecked)
    return report


def heal(orchestrator: Orchestrator, env: str, contexts: Iterable[str] | None = None, *,
         force_unlock: bool = False) -> DriftReport:
    """Check ``env`` for drift, then redeploy the drifted stacks in dependency order, under one lock and one run
    (``drift --heal``): each drifted stack is forced (its fingerprint matches); its consumers redeploy only if its
    outputs changed. Each healed stack is recorded in the registry and announced (``StackHealed``)."""
    order = _deployed(orchestrator, env, contexts)
    with orchestrator.hold(env, "drift --heal", force_unlock=force_unlock) as run:
        report = _check(orchestrator, env, order, "drift")
        drifted = [s.context for s in report.drifted]
        if not drifted or report.interrupted:
            run.status = _ended(report.interrupted, not report.unchecked)
            return report
        before = {c: orchestrator.registry.stack(env, c) for c in drifted}
        graph = orchestrator.graph(env)  # an environment made on demand: its recorded base and reused contexts
        deployed = {s.context for s in orchestrator.registry.stacks(env)}
        consumers = {d for c in drifted if c in graph for d in graph.descendants(c)} & deployed
        healed = orchestrator.up(env, sorted(set(drifted) | consumers), run_id=run.id, force=drifted)
        report.healed = healed
        for item in report.drifted:
            outcome = next((s for s in healed.stacks if s.context == item.context), None)
            if outcome is not None and outcome.status == StackStatus.SUCCEEDED:
                item.heal = HEALED
                at = outcome.finished_at or iso(orchestrator.clock()) or ""
                orchestrator.registry.record_heal(env, item.context, healed_at=at, run_id=run.id)
                prior = before.get(item.context)
                public = {k: v for k, v in outcome.outputs.items() if k not in outcome.secret_outputs}
                _emit(orchestrator, STACK_HEALED, {
                    "environment": env, "context": item.context, "stack": item.stack,
                    "engine": orchestrator.engine.name, "simulated": orchestrator.simulated,
                    "duration_s": max(0.0, float(outcome.duration_s or 0.0)),
                    "resources": len(item.resources),
                    "outputs_changed": prior is None or prior.outputs != public})
            else:
                item.heal = NOT_HEALED
                item.heal_error = (outcome.error if outcome is not None else None) or "not run"
        run.status = _ended(healed.interrupted, report.exit_code == 0)
    return report


def _ended(interrupted: bool, ok: bool) -> RunStatus:
    """How a refresh, drift check or heal run is recorded."""
    return RunStatus.INTERRUPTED if interrupted else RunStatus.SUCCEEDED if ok else RunStatus.FAILED
