"""One runner per operation, and the drivers that schedule them: the part of the core that runs stacks.

Each runner owns the steps of its operation on one stack, like dbt's runners own theirs:

- **before** (in the coordinator): tell the reporter, mark the stack in the registry;
- **execute**: hand a plain-data :class:`~ode.execution.executor.StackTask` to the executor and wait for its plain-data
  result; a transient engine error is tried again (``retries`` times, ``backoff_s`` doubling), here and nowhere
  else;
- **after** (in the coordinator): check the result, record it in the registry, publish outputs and lifecycle events;
  or **failed**: record the failure.

=================  ==============================  ==================================================================
runner             engine operation                after
=================  ==============================  ==================================================================
:class:`UpRunner`       ``up``                     outputs checked against the contract, recorded, published
:class:`HealRunner`     ``up`` of a drifted stack  as ``up``, and the heal recorded and announced (``StackHealed``)
:class:`DestroyRunner`  ``destroy``                the stack forgotten, its SSM parameters removed
:class:`RefreshRunner`  ``refresh``                nothing recorded (the stack's state took the cloud's values)
:class:`DriftRunner`    ``refresh``, preview only  the check recorded, ``DriftDetected`` where something drifted
:class:`PreviewRunner`  ``preview``                nothing recorded (what ``plan`` shows)
=================  ==============================  ==================================================================

The coordinator alone writes the registry, and every write is fenced by the run's id: when the run lost its lock,
the write changes nothing, the runner stops (:meth:`~ode.execution.runs.Run.lose`), and nothing more starts; what
can still be cancelled is cancelled (:meth:`~ode.execution.executor.Executor.cancel`).

The drivers (:func:`deploy`, :func:`take_down`, :func:`each`) put a runner to work over a
:class:`~ode.execution.planning.Scope` through the ready-set scheduler (:func:`schedule`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from ..clock import Clock, iso, utcnow
from ..contracts import MAY_BE_EMPTY, OUTPUT_FIELDS, ContractLibrary
from ..engines.protocol import EngineError, Operation, StackResult
from ..errors import OdeError
from ..publishing.lifecycle_events import (
    DRIFT_DETECTED,
    STACK_HEALED,
    Emitter,
    stack_failed,
    stack_succeeded,
)
from ..publishing.ssm_outputs import OutputsPublisher
from ..registry.errors import LeaseLostError
from ..registry.protocol import RegistryBackend
from ..status import GOOD, PlanAction, StackStatus
from . import runs
from .events import RUNNING, Reporter, RunFinished, RunInterrupted, RunStarted, StackChanged, engine_line
from .executor import Executor, StackTask
from .planning import Planner, Produced, Scope, StackPlan
from .results import RunResult, StackOutcome
from .runs import Run
from .scheduler import ReadyQueue, Skip, run_ready

__all__ = ["DestroyRunner", "DriftRunner", "HealRunner", "OutputContractError", "PreviewRunner", "RefreshRunner",
           "RunContext", "StackRunner", "UpRunner", "check_outputs", "deploy", "each", "schedule", "take_down"]

#: How often a run looks whether its lease was lost (what the lease's heartbeat found), to stop at once.
LEASE_POLL_S = 0.2


class OutputContractError(OdeError):
    """A stack's outputs do not carry what its contract promises."""


def check_outputs(library: ContractLibrary, context: str, outputs: dict[str, Any]) -> None:
    """Raise :class:`OutputContractError` when ``outputs`` lack an interface or a field the contract promises."""
    problems = []
    for name, iface in library.contexts[context].provides.items():
        value = outputs.get(name)
        if not isinstance(value, dict):
            problems.append(f"{name}: missing")
            continue
        missing = [f for f in OUTPUT_FIELDS[iface.kind]
                   if value.get(f) in (None, "") or (value.get(f) == [] and f not in MAY_BE_EMPTY)]
        if missing:
            problems.append(f"{name}: no {', '.join(missing)}")
    if problems:
        raise OutputContractError(f"outputs do not keep the contract: {'; '.join(problems)}")


@dataclass
class RunContext:
    """What the runners of one run share: the run (its id fences every registry write), the registry, the executor,
    the reporter, where outputs and lifecycle events are published, the engine's name, and the retry policy.
    ``cancel`` is set on Ctrl-C and when the lock is lost: no retry waits any longer."""

    env: str
    run: Run
    registry: RegistryBackend
    executor: Executor
    reporter: Reporter
    library: ContractLibrary
    engine_name: str
    simulated: bool = False
    clock: Clock = utcnow
    retries: int = 2
    backoff_s: float = 1.0
    events: Emitter | None = None
    outputs: OutputsPublisher | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    _inflight: set[str] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.run.on_lost(self._stop_all)

    def progress(self, stack: str, line: str) -> None:
        """The engines' progress callback: one line of ``stack``'s engine, told to the reporter as an event."""
        self.reporter.handle(engine_line(stack, line))

    def _stop_all(self, _lost: LeaseLostError) -> None:
        """The lock is lost: no retry waits, and every operation still running is asked to stop."""
        self.cancel.set()
        with self._lock:
            running = sorted(self._inflight)
        for stack in running:
            self.executor.cancel(stack)

    def start(self, stack: str) -> None:
        with self._lock:
            self._inflight.add(stack)
        if self.run.lost is not None:  # lost between the check and now: stop it as the others
            self.executor.cancel(stack)

    def end(self, stack: str) -> None:
        with self._lock:
            self._inflight.discard(stack)

    def emit(self, event: tuple[str, dict[str, Any]]) -> None:
        """Send a lifecycle event where they are configured; never fails the run."""
        if self.events is None or self.run.lost is not None:
            return
        try:
            self.events.emit(*event)
        except Exception:  # noqa: BLE001 - an event must never fail the stack it reports
            pass


def _error_text(exc: BaseException) -> str:
    """An error as a stack's ``error``: an engine's message and the last lines of its own words."""
    if isinstance(exc, EngineError):
        text = str(exc)
        if exc.detail:
            text += "\n" + "\n".join(exc.detail.strip().splitlines()[-5:])
        return text
    if isinstance(exc, OdeError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class StackRunner:
    """The steps of one operation on one stack (see the module's docstring). Subclasses set ``operation`` and
    override :meth:`before`, :meth:`check`, :meth:`after` and :meth:`failed`; :meth:`run` is written once."""

    operation: ClassVar[Operation]
    preview_only: ClassVar[bool] = False

    def __init__(self, ctx: RunContext):
        self.ctx = ctx

    def run(self, item: StackPlan) -> StackOutcome:
        """before, execute (a transient error retried), after or failed. A run that lost its lock writes nothing
        more: the stack ends ``failed`` with the lost lock as its error, and the run stops."""
        started = self.ctx.clock()
        t0 = time.perf_counter()
        try:
            self.ctx.run.check()  # nothing starts once the lock is lost
            self.before(item, started)
            result, attempts, error = self._execute(item)
            self.ctx.run.check()
            if error is not None:
                outcome = self.failed(item, started, t0, error, attempts)
                return self.placed(item, outcome, getattr(error, "worker", None), getattr(error, "log", None))
            assert result is not None
            outcome = self.after(item, result, started, t0, attempts)
            return self.placed(item, outcome, result.worker, result.log)
        except LeaseLostError as lost:
            self.ctx.run.lose(lost)
            return StackOutcome(item.stack, item.context, StackStatus.FAILED, iso(started), iso(self.ctx.clock()),
                                time.perf_counter() - t0, error=str(self.ctx.run.lost or lost))

    def task(self, item: StackPlan, attempt: int) -> StackTask:
        assert item.spec is not None, f"{item.stack} was not planned"
        return StackTask(self.operation, item.spec, run_id=self.ctx.run.id, attempt=attempt,
                         preview_only=self.preview_only)

    def _execute(self, item: StackPlan) -> tuple[StackResult | None, int, BaseException | None]:
        """The engine operation through the executor; a transient error is tried again (``retries`` times, unless
        the run was cancelled). Returns (result, attempts, error)."""
        attempts = 0
        while True:
            attempts += 1
            self.ctx.run.check()
            self.ctx.start(item.stack)
            try:
                result = self.ctx.executor.submit(self.task(item, attempts), self.ctx.progress).result()
                self.check(item, result)
                return result, attempts, None
            except EngineError as exc:
                if exc.transient and attempts <= self.ctx.retries and not self.ctx.cancel.is_set():
                    self.retrying(item, exc)
                    if not self.ctx.cancel.wait(self.ctx.backoff_s * 2 ** (attempts - 1)):
                        continue
                return None, attempts, exc
            except Exception as exc:  # noqa: BLE001 - one stack's failure must not take the others down
                return None, attempts, exc
            finally:
                self.ctx.end(item.stack)

    #: Whether the stack's record keeps where it last ran (the stacks an operation leaves deployed).
    records_worker: ClassVar[bool] = False

    def placed(self, item: StackPlan, outcome: StackOutcome, worker: dict[str, Any] | None,
               log: str | None) -> StackOutcome:
        """Where the operation ran (the executor's word), on the outcome and, for a stack that stays deployed, in
        its registry record beside its log's link (``ode status --json`` shows them)."""
        outcome.worker, outcome.log = worker, log
        record = getattr(self.ctx.registry, "record_worker", None)
        if worker is not None and self.records_worker and callable(record):
            try:
                record(item.env, item.context, worker=worker, log=log)
            except LeaseLostError:
                raise
            except Exception as exc:  # noqa: BLE001 - where it ran is a note: it never fails the stack
                logging.getLogger("ode").warning("%s: where it ran could not be recorded: %s", item.stack, exc)
        return outcome

    # -- the steps ----------------------------------------------------------------------------------------------

    def before(self, item: StackPlan, started: datetime) -> None:
        """Before the engine runs (nothing by default)."""

    def check(self, item: StackPlan, result: StackResult) -> None:
        """Raise an :class:`OdeError` when ``result`` is not acceptable (not retried)."""

    def retrying(self, item: StackPlan, error: EngineError) -> None:
        self.ctx.reporter.handle(StackChanged(item.stack, RUNNING, f"retrying after: {error}"))

    def after(self, item: StackPlan, result: StackResult, started: datetime, t0: float,
              attempts: int) -> StackOutcome:
        """The operation ended well: record it; the stack's outcome."""
        return StackOutcome(item.stack, item.context, StackStatus.SUCCEEDED, iso(started), iso(self.ctx.clock()),
                            time.perf_counter() - t0, result.outputs, frozenset(result.secret_outputs),
                            reason=item.reason or None, attempts=attempts, changes=result.changes, result=result)

    def failed(self, item: StackPlan, started: datetime, t0: float, error: BaseException,
               attempts: int) -> StackOutcome:
        """The operation failed: record it; the stack's outcome."""
        return StackOutcome(item.stack, item.context, StackStatus.FAILED, iso(started), iso(self.ctx.clock()),
                            time.perf_counter() - t0, error=_error_text(error), attempts=attempts)

    def _record_failure(self, item: StackPlan, started: datetime, t0: float, error: BaseException,
                        attempts: int) -> StackOutcome:
        """A failure recorded in the registry (status failed, no fingerprint); a registry error is told with the
        stack's own error, a lost lock stops the run."""
        text = _error_text(error)
        finished = self.ctx.clock()
        duration = time.perf_counter() - t0
        try:
            self.ctx.registry.record_failure(item.env, item.context, error=text, finished_at=iso(finished) or "",
                                             duration_s=duration)
        except LeaseLostError:
            raise
        except Exception as exc:  # noqa: BLE001 - the stack's own error must reach the user all the same
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            text = f"{text} (and the registry could not record it: {reason})"
        return StackOutcome(item.stack, item.context, StackStatus.FAILED, iso(started), iso(finished), duration,
                            error=text, attempts=attempts)


class UpRunner(StackRunner):
    """Deploys a stack: marks it running, runs ``up``, checks the outputs against the contract, records them and
    publishes them (SSM, ``StackSucceeded``)."""

    operation = "up"
    records_worker = True

    def before(self, item: StackPlan, started: datetime) -> None:
        self.ctx.reporter.handle(StackChanged(item.stack, RUNNING, item.reason))
        self.ctx.registry.mark_running(item.env, item.context, engine=self.ctx.engine_name,
                                       started_at=iso(started) or "", run_id=self.ctx.run.id)

    def check(self, item: StackPlan, result: StackResult) -> None:
        check_outputs(self.ctx.library, item.context, result.outputs)

    def after(self, item: StackPlan, result: StackResult, started: datetime, t0: float,
              attempts: int) -> StackOutcome:
        finished = self.ctx.clock()
        duration = time.perf_counter() - t0
        public = {k: v for k, v in result.outputs.items() if k not in result.secret_outputs}
        self.ctx.registry.record_success(item.env, item.context, fingerprint=item.fingerprint or "",
                                         inputs=item.parts, outputs=public,
                                         secret_outputs=sorted(result.secret_outputs), engine=self.ctx.engine_name,
                                         simulated=result.simulated, started_at=iso(started) or "",
                                         finished_at=iso(finished) or "", duration_s=duration)
        self.publish(item, result)
        return StackOutcome(item.stack, item.context, StackStatus.SUCCEEDED, iso(started), iso(finished), duration,
                            result.outputs, frozenset(result.secret_outputs), reason=item.reason, attempts=attempts,
                            changes=result.changes, result=result)

    def publish(self, item: StackPlan, result: StackResult) -> None:
        """Tell other tooling that a stack deployed: its outputs to SSM, a StackSucceeded event. Neither can fail
        the stack: a publishing error is one warning line."""
        if self.ctx.outputs is not None:
            self.ctx.outputs.publish(item.env, item.context, result.outputs, result.secret_outputs,
                                     engine=self.ctx.engine_name, simulated=result.simulated)
        self.ctx.emit(stack_succeeded(item.env, item.context, engine=self.ctx.engine_name,
                                      duration_s=result.duration_s, outputs=result.outputs,
                                      secret_outputs=result.secret_outputs, simulated=result.simulated))

    def failed(self, item: StackPlan, started: datetime, t0: float, error: BaseException,
               attempts: int) -> StackOutcome:
        return self._record_failure(item, started, t0, error, attempts)


class HealRunner(UpRunner):
    """Redeploys a drifted stack (its fingerprint matches: its inputs did not change, the cloud did), then records
    the heal and announces it (``StackHealed``). ``drifted`` gives how many resources of each stack drifted."""

    def __init__(self, ctx: RunContext, drifted: dict[str, int]):
        super().__init__(ctx)
        self.drifted = drifted

    def after(self, item: StackPlan, result: StackResult, started: datetime, t0: float,
              attempts: int) -> StackOutcome:
        outcome = super().after(item, result, started, t0, attempts)
        at = outcome.finished_at or iso(self.ctx.clock()) or ""
        self.ctx.registry.record_heal(item.env, item.context, healed_at=at, run_id=self.ctx.run.id)
        public = {k: v for k, v in outcome.outputs.items() if k not in outcome.secret_outputs}
        self.ctx.emit((STACK_HEALED, {
            "environment": item.env, "context": item.context, "stack": item.stack, "engine": self.ctx.engine_name,
            "simulated": self.ctx.simulated, "duration_s": max(0.0, float(outcome.duration_s or 0.0)),
            "resources": self.drifted.get(item.context, 0),
            "outputs_changed": item.record is None or item.record.outputs != public}))
        return outcome


class DestroyRunner(StackRunner):
    """Destroys a stack: marks it destroying, runs ``destroy``, forgets it and removes its SSM parameters."""

    operation = "destroy"

    def before(self, item: StackPlan, started: datetime) -> None:
        self.ctx.reporter.handle(StackChanged(item.stack, RUNNING))
        self.ctx.registry.mark_running(item.env, item.context, engine=self.ctx.engine_name,
                                       started_at=iso(started) or "", run_id=self.ctx.run.id, operation="destroy")

    def after(self, item: StackPlan, result: StackResult, started: datetime, t0: float,
              attempts: int) -> StackOutcome:
        self.ctx.registry.forget_stack(item.env, item.context)
        if self.ctx.outputs is not None:
            self.ctx.outputs.unpublish(item.env, item.context, simulated=self.ctx.simulated)
        return StackOutcome(item.stack, item.context, StackStatus.DESTROYED, iso(started), iso(self.ctx.clock()),
                            time.perf_counter() - t0, attempts=attempts, changes=result.changes, result=result)

    def failed(self, item: StackPlan, started: datetime, t0: float, error: BaseException,
               attempts: int) -> StackOutcome:
        return self._record_failure(item, started, t0, error, attempts)


class PreviewRunner(StackRunner):
    """Previews a stack (``plan``): what it would create, update, replace or delete; records nothing."""

    operation = "preview"

    def failed(self, item: StackPlan, started: datetime, t0: float, error: BaseException,
               attempts: int) -> StackOutcome:
        text = str(error) if isinstance(error, OdeError) else _error_text(error)
        return StackOutcome(item.stack, item.context, StackStatus.FAILED, iso(started), iso(self.ctx.clock()),
                            time.perf_counter() - t0, error=text, attempts=attempts)


class RefreshRunner(StackRunner):
    """Refreshes a stack's state from the cloud (``refresh``); records nothing in the registry."""

    operation = "refresh"

    def failed(self, item: StackPlan, started: datetime, t0: float, error: BaseException,
               attempts: int) -> StackOutcome:
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        if not isinstance(error, OdeError):
            text = f"{type(error).__name__}: {text}"
        return StackOutcome(item.stack, item.context, StackStatus.FAILED, iso(started), iso(self.ctx.clock()),
                            time.perf_counter() - t0, error=text, attempts=attempts)


class DriftRunner(RefreshRunner):
    """Checks a stack for drift (a refresh-preview that changes nothing): records when it was checked and what
    drifted, and announces a drift (``DriftDetected``)."""

    preview_only = True

    def after(self, item: StackPlan, result: StackResult, started: datetime, t0: float,
              attempts: int) -> StackOutcome:
        resources = drifted_resources(result)
        checked = iso(self.ctx.clock()) or ""
        self.ctx.registry.record_drift_check(item.env, item.context, checked_at=checked, drifted=resources)
        if resources:
            self.ctx.emit((DRIFT_DETECTED, {
                "environment": item.env, "context": item.context, "stack": item.stack,
                "engine": self.ctx.engine_name, "simulated": self.ctx.simulated,
                "resources": [{"type": r["type"], "name": r["name"], "properties": [d["path"] for d in r["diff"]]}
                              for r in resources]}))
        drifted = [r for r in result.resources if r.op != "same"]
        return StackOutcome(item.stack, item.context, StackStatus.SUCCEEDED, iso(started), checked,
                            time.perf_counter() - t0, result.outputs, frozenset(result.secret_outputs),
                            reason=f"{len(drifted)} resource(s) drifted" if drifted else "no drift",
                            attempts=attempts, changes=result.changes, result=result)

    def failed(self, item: StackPlan, started: datetime, t0: float, error: BaseException,
               attempts: int) -> StackOutcome:
        outcome = super().failed(item, started, t0, error, attempts)
        self.unchecked(item.env, item.context, outcome.error or "not checked", outcome.finished_at)
        return outcome

    def unchecked(self, env: str, context: str, error: str, at: str | None = None) -> None:
        """Record that a stack could not be checked (it failed, or the run ended before it started)."""
        self.ctx.registry.record_drift_check(env, context, checked_at=at or iso(self.ctx.clock()) or "",
                                             drifted=None, error=error)


def drifted_resources(result: StackResult) -> list[dict[str, Any]]:
    """The drifted resources of a refresh-preview, as reports and the registry keep them (no inputs)."""
    return [{"type": r.type, "name": r.name, "urn": r.urn, "op": r.op, "diff": [d.to_dict() for d in r.diff]}
            for r in result.resources if r.op != "same"]


# -- scheduling --------------------------------------------------------------------------------------------------


def schedule(ctx: RunContext, operation: str, order: Sequence[str], deps: dict[str, set[str]],
             work: Callable[[str], StackOutcome], *, parallel: int,
             weights: dict[str, float] | None = None) -> tuple[list[StackOutcome], bool]:
    """Run ``work`` on every node of ``order`` once all of its ``deps`` ended well, at most ``parallel`` at once,
    critical path first (``weights``: last known durations), with progress told to the reporter; skip the nodes
    that need a failed one. Returns the outcomes in ``order`` and whether the run was interrupted (Ctrl-C: nothing
    new starts, running stacks finish; a lost lock: the same, and what runs is asked to stop)."""
    env = ctx.env
    queue = ReadyQueue(order, deps, weights=weights or {}, parallel=parallel)
    outcomes: dict[str, StackOutcome] = {}
    if ctx.run.lost is None:
        ctx.cancel.clear()
    stop_listening = ctx.run.on_lost(lambda _lost: queue.interrupt())
    watching = threading.Event()
    watcher = threading.Thread(target=_watch_lease, args=(ctx, watching), name=f"ode-fence-{env}", daemon=True)
    watcher.start()
    ctx.reporter.handle(RunStarted(env, operation, tuple(f"{env}.{c}" for c in order)))

    def judge(c: str, outcome: StackOutcome) -> str | None:
        outcomes[c] = outcome
        ctx.reporter.handle(StackChanged(outcome.stack, outcome.status, outcome.error or outcome.reason or ""))
        if outcome.status in GOOD:
            return None
        inherited = outcome.reason if outcome.status == StackStatus.SKIPPED else None
        return inherited or f"{outcome.stack} {outcome.status}"

    def skip(s: Skip) -> None:
        outcomes[s.node] = StackOutcome(f"{env}.{s.node}", s.node, StackStatus.SKIPPED, reason=s.cause,
                                        error=f"skipped: {s.cause}")
        ctx.reporter.handle(StackChanged(f"{env}.{s.node}", StackStatus.SKIPPED, s.cause))

    def guarded(c: str) -> StackOutcome:
        # What escapes a stack's work (a registry write that failed, a bug) fails that stack, never the run's
        # record: nothing is recorded as done that was not done.
        try:
            return work(c)
        except LeaseLostError as lost:
            ctx.run.lose(lost)
            return StackOutcome(f"{env}.{c}", c, StackStatus.FAILED, error=str(ctx.run.lost or lost))
        except Exception as error:  # noqa: BLE001 - one stack's failure must not take the run down
            text = str(error) if isinstance(error, OdeError) else f"{type(error).__name__}: {error}"
            return StackOutcome(f"{env}.{c}", c, StackStatus.FAILED,
                                error=text.splitlines()[0] if text else type(error).__name__)

    def interrupt(running: int) -> None:
        ctx.cancel.set()
        ctx.reporter.handle(RunInterrupted(env, running))
        # Workers elsewhere do not see this process's Ctrl-C: an executor that has them passes it on (the first
        # asks each running stack to stop gracefully, a second stops them hard).
        forward = getattr(ctx.executor, "interrupt", None)
        if callable(forward):
            forward()

    try:
        _, interrupted = run_ready(queue, guarded, judge=judge, on_skip=skip, on_interrupt=interrupt)
    finally:
        watching.set()
        stop_listening()
        ctx.reporter.handle(RunFinished(env))
    for c in order:
        if c not in outcomes:
            outcomes[c] = StackOutcome(f"{env}.{c}", c, StackStatus.SKIPPED, reason="interrupted before it started",
                                       error="skipped: the run was interrupted")
    return [outcomes[c] for c in order], interrupted


def _watch_lease(ctx: RunContext, done: threading.Event) -> None:
    """While the run schedules stacks, look whether the registry found its lock lost (a lease's heartbeat that
    could not renew it): the run then stops at once, instead of at its next write."""
    while not done.wait(LEASE_POLL_S):
        lost = runs.lease_lost(ctx.registry, ctx.env)
        if lost is not None and lost.run_id == ctx.run.id:
            ctx.run.lose(lost)
            return


def _weights(registry: RegistryBackend, env: str) -> dict[str, float]:
    """Each stack's last known duration: critical path first (see :mod:`ode.execution.scheduler`)."""
    return {s.context: s.duration_s for s in registry.stacks(env) if s.duration_s}


# -- the drivers ---------------------------------------------------------------------------------------------------


def deploy(ctx: RunContext, planner: Planner, scope: Scope, result: RunResult, *, parallel: int,
           forced: Iterable[str] = (), healer: HealRunner | None = None) -> None:
    """Deploy ``scope``'s stacks into ``result``: each, once its producers are done, is planned with their actual
    outputs (early cutoff) and, unless unchanged, run by an :class:`UpRunner` (a ``forced`` one by ``healer``, or
    an up runner too). Then ``StackFailed`` for each failed stack, and the orphaned stacks, are added."""
    env = scope.env
    forced = set(forced)
    runner = UpRunner(ctx)
    produced: dict[str, Produced] = {}
    lock = threading.Lock()

    def work(context: str) -> StackOutcome:
        with lock:
            done = dict(produced)
        started = ctx.clock()
        t0 = time.perf_counter()
        item = planner.decide(scope, context, done, forced=context in forced)
        if item.error is not None:
            outcome = StackOutcome(item.stack, context, StackStatus.FAILED, iso(started), iso(ctx.clock()),
                                   time.perf_counter() - t0, error=item.error)
        elif item.action == PlanAction.UNCHANGED and item.record is not None:
            outcome = StackOutcome(item.stack, context, StackStatus.UNCHANGED, outputs=item.record.outputs,
                                   secret_outputs=frozenset(item.record.secret_outputs), reason=item.reason)
        else:
            outcome = (healer if healer is not None and context in forced else runner).run(item)
        if outcome.status in GOOD:
            with lock:
                produced[context] = Produced(outcome.outputs, outcome.secret_outputs)
        return outcome

    result.stacks, result.interrupted = schedule(ctx, "up", scope.order, scope.deps, work, parallel=parallel,
                                                 weights=_weights(ctx.registry, env))
    ctx.run.check()
    for failed in (s for s in result.stacks if s.status == StackStatus.FAILED):
        skipped = [s.stack for s in result.stacks
                   if s.status == StackStatus.SKIPPED and failed.stack in (s.reason or "")]
        ctx.emit(stack_failed(env, failed.context, engine=ctx.engine_name, error=failed.error or "",
                              duration_s=failed.duration_s, skipped=skipped, simulated=ctx.simulated))
    listed = {s.context for s in result.stacks}
    for rec in planner.orphans(env):
        if rec.context not in listed:
            result.stacks.append(StackOutcome(rec.stack, rec.context, StackStatus.ORPHANED, rec.started_at,
                                              rec.finished_at, reason=planner.orphan_reason(env, rec.context)))


def take_down(ctx: RunContext, planner: Planner, scope: Scope, result: RunResult, *, parallel: int) -> None:
    """Destroy ``scope``'s stacks into ``result``: a stack goes once every stack that consumes it is gone."""
    runner = DestroyRunner(ctx)

    def work(context: str) -> StackOutcome:
        spec = planner.stack_spec(scope.env, context, scope.base)
        return runner.run(StackPlan(stack=f"{scope.env}.{context}", context=context, env=scope.env, base=scope.base,
                                    action=PlanAction.DEPLOY, reason="destroy", spec=spec))

    result.stacks, result.interrupted = schedule(ctx, "destroy", scope.order, scope.deps, work, parallel=parallel,
                                                 weights=_weights(ctx.registry, scope.env))
    ctx.run.check()


def each(ctx: RunContext, planner: Planner, scope: Scope, runner: StackRunner, command: str, *,
         parallel: int) -> tuple[list[StackOutcome], bool]:
    """Run ``runner`` on every stack of ``scope`` at once (at most ``parallel``): refreshes and drift checks, each
    with the spec ``up`` builds, less upstream (a refresh runs no program)."""

    def work(context: str) -> StackOutcome:
        spec = planner.stack_spec(scope.env, context, scope.base)
        return runner.run(StackPlan(stack=f"{scope.env}.{context}", context=context, env=scope.env, base=scope.base,
                                    action=PlanAction.DEPLOY, reason="", spec=spec))

    outcomes, interrupted = schedule(ctx, command, scope.order, scope.deps, work, parallel=parallel,
                                     weights=_weights(ctx.registry, scope.env))
    ctx.run.check()
    return outcomes, interrupted
