"""Plan and run an environment: one stack per bounded context, in dependency order, incrementally.

    from ode import load_library, Orchestrator, Registry
    from ode.engines.simulated import SimulatedEngine

    library = load_library("contracts")
    registry = Registry(".ode")
    orchestrator = Orchestrator(library, registry, SimulatedEngine(library, ".ode"), parallel=8)
    result = orchestrator.up("dev")             # a RunResult; result.ok, result.to_dict()

The orchestrator is a facade over the execution core: the planner (:mod:`ode.execution.planning`) decides, the
runners (:mod:`ode.execution.runners`) run each stack's operation through an executor
(:mod:`ode.execution.executor`), the scheduler orders them, and the run's lock fences every registry write
(:mod:`ode.execution.runs`).

**Ready-set scheduling.** A stack starts as soon as every producer it needs has succeeded (or was unchanged), at
most ``parallel`` at once, highest priority first (its place in the deploy order); there is no barrier between
levels. A failure marks the stacks that need it, directly or not, ``skipped`` with the cause; the others go on.

**Incremental.** A stack's fingerprint covers its contract, its resolved settings, the code of its component
kind, its environment's place (account, region, role) and its upstream outputs. A stack whose fingerprint equals
that of its last successful deploy is ``unchanged`` and starts no engine run; since the upstream part is computed
from the producers' *actual* outputs when the stack becomes ready, a producer redeployed with the same outputs does
not wake its consumers (early cutoff).

**Consistent.** Each stack is marked running (its fingerprint cleared) before its engine call and recorded when it
ends; a run killed at any point leaves the others as they were, and the next run redoes only what is not done. A
run that lost its lock (:class:`~ode.registry.errors.LeaseLostError`) writes nothing more and stops.

**Rehearsals apart from reality.** With the simulated engine, a run that would replace what a real engine deployed
(a stack's registry record, its outputs in SSM) is refused before it starts (:class:`RehearsalError`); and a real
run never takes a stack that only the simulated engine deployed for deployed.
"""


from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from typing import Any

from ..clock import Clock, utcnow
from ..contracts import ContractLibrary
from ..engines.protocol import Engine
from ..errors import OdeError, UsageError
from ..graph import EnvGraph
from ..program import CONFIG_TAGS, StackSpec
from ..publishing.lifecycle_events import Emitter, environment_destroyed
from ..publishing.ssm_outputs import OutputsPublisher
from ..registry.protocol import RegistryBackend
from ..registry.records import EnvironmentRecord, StackRecord
from ..status import EnvironmentStatus, PlanAction, StackStatus
from . import runners, runs
from .events import Reporter, as_reporter, engine_line
from .executor import Executor, LocalExecutor
from .planning import Planner, Produced, RehearsalError, StackPlan, environment_tags
from .results import Plan, PlannedStack, RunResult, StackOutcome, run_status
from .runners import OutputContractError, RunContext
from .runs import Run

__all__ = ["CONFIG_TAGS", "Orchestrator", "OutputContractError", "Plan", "PlannedStack", "RehearsalError",
           "RunResult", "StackOutcome", "environment_tags"]


class Orchestrator:
    """Plans and runs environments of a contracts library through one engine, remembering in ``registry``.

    ``retries`` transient engine errors per stack, ``backoff_s`` doubling between them; ``clock`` stamps the run
    times; ``engine_config`` is stack config every stack gets (a local target's endpoint, for example);
    ``executor`` runs each stack's engine operation (None: :class:`~ode.execution.executor.LocalExecutor`, the
    scheduler's own threads).
    """

    def __init__(self, library: ContractLibrary, registry: RegistryBackend, engine: Engine, *, parallel: int = 8,
                 reporter: Reporter | None = None, retries: int = 2, backoff_s: float = 1.0,
                 clock: Clock = utcnow, engine_config: dict[str, str] | None = None,
                 executor: Executor | None = None):
        if parallel < 1:
            raise UsageError(f"--parallel must be at least 1, not {parallel}")
        self.library = library
        self.registry = registry
        self.engine = engine
        self.parallel = parallel
        self.reporter: Reporter = as_reporter(reporter)
        self.retries = retries
        self.backoff_s = backoff_s
        self.clock = clock
        self.engine_config = dict(engine_config or {})
        self.executor = executor
        #: Break a lock left by a process that is gone, on every run (``--force-unlock``).
        self.force_unlock = False
        #: With ``force_unlock``: also break a live lease (``--force``; a lease's holder may be alive elsewhere).
        self.force = False
        #: Lifecycle events: an object with ``emit(detail_type, detail)`` that never raises; None: none sent.
        self.events: Emitter | None = None
        #: Stack outputs to SSM Parameter Store (environments that say ``publish: ssm``), and read back from there
        #: for producers this registry does not know; None: neither.
        self.outputs: OutputsPublisher | None = None
        #: Tags of environments made on demand, by environment (set by the ephemeral-environment service).
        self.tags: dict[str, dict[str, str]] = {}
        # The parts of a fingerprint that a run does not change (contract, settings, code, place), by stack.
        self._fixed: dict[tuple[str, str, str | None, str], dict[str, str]] = {}

    @property
    def simulated(self) -> bool:
        """Whether this orchestrator's engine is the simulated one: its runs are rehearsals."""
        return getattr(self.engine, "name", "") == "simulated"

    # -- the core's parts ------------------------------------------------------------------------------------

    def planner(self) -> Planner:
        """The planner over this orchestrator's library, registry, published outputs and stack config."""
        return Planner(self.library, self.registry, read_outputs=lambda spec: self.engine.outputs(spec),
                       published=self.outputs, engine_config=self.engine_config, tags=self.tags,
                       simulated=self.simulated, fixed=self._fixed)

    def context(self, env: str, run: Run) -> RunContext:
        """What the runners of ``run`` on ``env`` share (registry, executor, reporter, publishing, retries)."""
        return RunContext(env=env, run=run, registry=self.registry,
                          executor=self.executor or LocalExecutor(self.engine), reporter=self.reporter,
                          library=self.library, engine_name=self.engine.name, simulated=self.simulated,
                          clock=self.clock, retries=self.retries, backoff_s=self.backoff_s, events=self.events,
                          outputs=self.outputs)

    def graph(self, env: str, contexts: Iterable[str] | None = None, *, base_env: str | None = None,
              reuse: Iterable[str] = ()) -> EnvGraph:
        """The graph of what ``env`` deploys: ``contexts`` and what they need (all when None), minus ``reuse``."""
        return self.planner().graph(env, contexts, base_env=base_env, reuse=reuse)

    def stack_spec(self, env: str, context: str, base: str | None = None, upstream: dict[str, Any] | None = None,
                   secret: frozenset[tuple[str, str, str]] = frozenset()) -> StackSpec:
        """What the engine is given for ``context`` in ``env`` (``base``: the base of an environment made on demand):
        the project, the upstream outputs (``secret`` naming the secret ones), this orchestrator's stack config and
        the tags of an environment made on demand."""
        return self.planner().stack_spec(env, context, base, upstream, secret)

    def check_outputs(self, context: str, outputs: dict[str, Any]) -> None:
        """Raise :class:`OutputContractError` when ``outputs`` lack an interface or a field the contract
        promises."""
        runners.check_outputs(self.library, context, outputs)

    def positions(self, env: str) -> dict[str, int]:
        """Each context's place in ``env``'s deploy order; empty when the environment is unknown."""
        return self.planner().positions(env)

    def dependent_environments(self, env: str, contexts: Iterable[str] | None = None) -> list[EnvironmentRecord]:
        """The live environments made on demand from ``env`` that reuse any of its stacks (of ``contexts``, when
        given)."""
        return self.planner().dependent_environments(env, contexts)

    def progress(self, stack: str, line: str) -> None:
        """The engines' progress callback: one line of ``stack``'s engine, told to the reporter as an event."""
        self.reporter.handle(engine_line(stack, line))

    def refuse_rehearsal(self, env: str, contexts: Iterable[str]) -> None:
        """With the simulated engine: :class:`RehearsalError` (exit 2) when a stack of ``contexts`` in ``env`` was
        deployed by a real engine (its registry record, or its outputs in SSM), before anything is written."""
        self.planner().refuse_rehearsal(env, contexts)

    # -- plan ----------------------------------------------------------------------------------------------------

    def plan(self, env: str, contexts: Iterable[str] | None = None, *, base_env: str | None = None,
             reuse: Iterable[str] = (), preview: bool = True) -> Plan:
        """Which stacks ``up`` would deploy, in which order, which are unchanged and why; with ``preview``, each
        stack to deploy is previewed by the engine (its resources and changes). Without it, no engine runs."""
        planner = self.planner()
        scope = planner.up_scope(env, contexts, base_env=base_env, reuse=reuse, check_reused=False)
        plan = Plan(env=env, engine=self.engine.name, operation="plan", simulated=self.simulated)
        for orphan in planner.orphans(env):
            plan.stacks.append(PlannedStack(stack=orphan.stack, context=orphan.context, action=PlanAction.ORPHANED,
                                            reason=planner.orphan_reason(env, orphan.context)))
        previews: dict[str, StackOutcome] = {}
        look: Callable[[StackPlan], Produced | None] | None = None
        if preview:
            runner = runners.PreviewRunner(self.context(env, Run(0, env=env)))  # no lock: it records nothing

            def look(item: StackPlan) -> Produced | None:
                outcome = previews[item.context] = runner.run(item)
                result = outcome.result
                if outcome.status != StackStatus.SUCCEEDED or result is None or not result.outputs:
                    return None
                return Produced(result.outputs, frozenset(result.secret_outputs))

        for item in planner.walk(scope, look):
            planned = PlannedStack(stack=item.stack, context=item.context, action=item.action, reason=item.reason,
                                   producers=item.producers, error=item.error)
            seen = previews.get(item.context)
            if seen is not None:
                if seen.status == StackStatus.FAILED:
                    planned.error = seen.error
                elif seen.result is not None:
                    planned.changes = seen.result.changes
                    planned.resources = [r.to_dict() for r in seen.result.resources]
            plan.stacks.append(planned)
        return plan

    # -- up ------------------------------------------------------------------------------------------------------

    def up(self, env: str, contexts: Iterable[str] | None = None, *, base_env: str | None = None,
           reuse: Iterable[str] = (), force_unlock: bool = False, run_id: int | None = None,
           force: Iterable[str] = (), run: Run | None = None, heal: Mapping[str, int] | None = None) -> RunResult:
        """Deploy ``env`` (or ``contexts`` and what they need) and return how each stack ended.

        ``force`` names contexts deployed even though their fingerprint matches (a drifted stack being healed: its
        inputs did not change, the cloud did); their consumers still redeploy only if its outputs change. ``heal``
        does the same for drifted contexts (with how many resources drifted in each), and records and announces
        each heal (``StackHealed``).

        On an environment made on demand (``ode up --env pr-1``), no ``contexts`` means the ones it was made with;
        contexts given are added to its record. ``run`` (or ``run_id``): a run whose lock the caller holds already
        (see :meth:`hold`); it is then neither taken nor released here.
        """
        planner = self.planner()
        scope = planner.up_scope(env, contexts, base_env=base_env, reuse=reuse)
        planner.refuse_rehearsal(env, scope.order)
        result = RunResult(env=env, engine=self.engine.name, operation="up", simulated=self.simulated)
        with self._run(env, "up", run_id, force_unlock, run) as held:
            if scope.base is None:
                self.registry.ensure_environment(env)
            record = scope.record
            if record is not None and scope.grown is not None and scope.grown != record.contexts:
                self.registry.put_environment(replace(record, contexts=scope.grown))
            ctx = self.context(env, held)
            healer = runners.HealRunner(ctx, dict(heal)) if heal else None
            runners.deploy(ctx, planner, scope, result, parallel=self.parallel, forced={*force, *(heal or {})},
                           healer=healer)
            held.status = run_status(result)
            if record is not None and not result.interrupted:
                self.registry.set_environment_status(
                    env, EnvironmentStatus.ACTIVE if result.ok else EnvironmentStatus.FAILED)
        return result

    # -- destroy -------------------------------------------------------------------------------------------------

    def destroy(self, env: str, contexts: Iterable[str] | None = None, *, base_env: str | None = None,
                reuse: Iterable[str] = (), force_unlock: bool = False, with_dependents: bool = False,
                run_id: int | None = None, run: Run | None = None) -> RunResult:
        """Destroy ``env``'s stacks (or ``contexts`` and every stack that needs them) in reverse order: a stack
        goes once every stack that consumes it is gone. Reused base stacks are never touched.

        A base environment whose stacks are reused by live environments made on demand is refused (they are
        named), unless ``with_dependents``: they are then destroyed first. An environment the registry has no
        record of is an error (a wrong ``--state-dir`` must not look like an empty environment)."""
        planner = self.planner()
        scope = planner.destroy_scope(env, contexts, base_env=base_env, reuse=reuse, with_dependents=with_dependents)
        planner.refuse_rehearsal(env, scope.order)
        for dep in scope.dependents:
            self.registry.set_environment_status(dep.name, EnvironmentStatus.DESTROYING)
            done = self.destroy(dep.name, base_env=dep.base, reuse=dep.reuse, force_unlock=force_unlock)
            self.registry.set_environment_status(
                dep.name, EnvironmentStatus.DESTROYED if done.ok else EnvironmentStatus.FAILED)
            if not done.ok:
                failed = "; ".join(f"{s.stack}: {s.error}" for s in done.stacks if s.status == StackStatus.FAILED)
                raise OdeError(f"{dep.name} (which reuses stacks of {env}) could not be destroyed, so {env} was "
                               f"left as it is: {failed or 'interrupted'}")
        result = RunResult(env=env, engine=self.engine.name, operation="destroy", simulated=self.simulated)
        with self._run(env, "destroy", run_id, force_unlock, run) as held:
            ctx = self.context(env, held)
            runners.take_down(ctx, planner, scope, result, parallel=self.parallel)
            held.status = run_status(result)
            if result.ok and not self.registry.stacks(env):  # `ode destroy --env pr-1` too: env list must say so
                self.registry.set_environment_status(env, EnvironmentStatus.DESTROYED)
                record = self.registry.environment(env)
                ctx.emit(environment_destroyed(
                    env, base=scope.base, ephemeral=scope.base is not None, stacks=len(result.stacks),
                    owner=record.owner if record else None, expires_at=record.expires_at if record else None,
                    simulated=self.simulated))
        return result

    # -- status ----------------------------------------------------------------------------------------------

    def status(self, env: str, contexts: Iterable[str] | None = None) -> RunResult:
        """What the registry knows of ``env``'s stacks (in deploy order), without running anything."""
        records = {s.context: s for s in self.registry.stacks(env)}
        wanted = set(contexts) if contexts is not None else set(records)
        planner = self.planner()
        try:
            base, _ = planner.where(env, None, ())
        except OdeError:
            base = None
        position = planner.positions(base or env)
        result = RunResult(env=env, engine=self.engine.name, operation="status", simulated=self.simulated)
        find_workers = getattr(self.registry, "workers", None)
        placed: dict[str, dict[str, Any]] = find_workers(env) if callable(find_workers) else {}
        for context in sorted(wanted & set(records), key=lambda c: (position.get(c, len(position)), c)):
            rec: StackRecord = records[context]
            result.stacks.append(StackOutcome(
                rec.stack, context, StackStatus(rec.status), rec.started_at, rec.finished_at, rec.duration_s,
                rec.outputs,
                frozenset(rec.secret_outputs), rec.error,
                reason=f"last deployed by the {rec.engine} engine" if rec.engine else None,
                worker=(placed.get(context) or {}).get("worker"), log=(placed.get(context) or {}).get("log")))
        result.simulated = any(r.simulated for r in records.values())
        return result

    # -- locks and scheduling ------------------------------------------------------------------------------------

    @contextmanager
    def hold(self, env: str, command: str, *, force_unlock: bool = False) -> Iterator[Run]:
        """Take ``env``'s lock for the block and record the run; the block sets ``run.status``. However the block
        ends, the run is recorded (``failed`` unless the block said otherwise, so that a crash is never recorded as
        a success) and the lock released. A run that lost its lock ends ``abandoned``
        (:class:`~ode.registry.errors.LeaseLostError` leaves the block)."""
        with self._run(env, command, None, force_unlock) as run:
            yield run

    def _run(self, env: str, command: str, run_id: int | None, force_unlock: bool,
             run: Run | None = None) -> AbstractContextManager[Run]:
        return runs.held(self.registry, env, command, self.engine.name, run_id=run_id, run=run,
                         force_unlock=force_unlock or self.force_unlock, force=self.force)

    def run_each(self, env: str, operation: str, order: Sequence[str], deps: dict[str, set[str]],
                 work: Callable[[str], StackOutcome], run: Run | None = None) -> tuple[list[StackOutcome], bool]:
        """Run ``work`` on the contexts of ``order`` through this orchestrator's scheduler: each once all of its
        ``deps`` ended well, at most ``parallel`` at once, in ``order``'s priority, with progress told to the
        reporter; a context whose dependency failed is skipped. Returns the outcomes in ``order`` and whether the
        run was interrupted. The caller holds ``env``'s lock (see :meth:`hold`; ``run``: that run)."""
        ctx = self.context(env, run or Run(0, env=env))
        return runners.schedule(ctx, operation, order, deps, work, parallel=self.parallel,
                                weights={s.context: s.duration_s for s in self.registry.stacks(env) if s.duration_s})
