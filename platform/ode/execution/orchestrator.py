"""Plan and run an environment: one stack per bounded context, in dependency order, incrementally.

    from ode import load_library, Orchestrator, Registry
    from ode.engines.simulated import SimulatedEngine

    library = load_library("contracts")
    registry = Registry(".ode")
    orchestrator = Orchestrator(library, registry, SimulatedEngine(library, ".ode"), parallel=8)
    result = orchestrator.up("dev")             # a RunResult; result.ok, result.to_dict()

**Ready-set scheduling.** A stack starts as soon as every producer it needs has succeeded (or was unchanged), at
most ``parallel`` at once, highest priority first (its place in the deploy order); there is no barrier between
levels. A failure marks the stacks that need it, directly or not, ``skipped`` with the cause; the others go on.

**Incremental.** A stack's fingerprint covers its contract, its resolved settings, the code of its component
kind, its environment's place (account, region, role) and its upstream outputs. A stack whose fingerprint equals
that of its last successful deploy is ``unchanged`` and starts no engine run; since the upstream part is computed
from the producers' *actual* outputs when the stack becomes ready, a producer redeployed with the same outputs does
not wake its consumers (early cutoff).

**Consistent.** Each stack is marked running (its fingerprint cleared) before its engine call and recorded when it
ends; a run killed at any point leaves the others as they were, and the next run redoes only what is not done.
"""


from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

from ..clock import Clock, iso, utcnow
from ..component_code import code_digests
from ..contracts import MAY_BE_EMPTY, OUTPUT_FIELDS, ContractLibrary
from ..engines.protocol import Engine, EngineError, StackResult
from ..errors import OdeError, ProtectedEnvironmentError, UsageError
from ..graph import EnvGraph
from ..program import CONFIG_TAGS, StackSpec
from ..publishing.lifecycle_events import Emitter, environment_destroyed, stack_failed, stack_succeeded
from ..publishing.ssm_outputs import OutputsPublisher
from ..registry.protocol import RegistryBackend
from ..registry.records import EnvironmentRecord, StackRecord
from ..status import GOOD, EnvironmentStatus, PlanAction, StackStatus
from . import runs
from .events import (
    RUNNING,
    Reporter,
    RunFinished,
    RunInterrupted,
    RunStarted,
    StackChanged,
    as_reporter,
    engine_line,
)
from .planning import digest, environment_tags, service_code_digest, why
from .results import Plan, PlannedStack, RunResult, StackOutcome, run_status
from .runs import Run
from .scheduler import ReadyQueue, Skip, run_ready

__all__ = ["CONFIG_TAGS", "Orchestrator", "OutputContractError", "Plan", "PlannedStack", "RunResult", "StackOutcome",
           "environment_tags"]

log = logging.getLogger(__name__)


class OutputContractError(OdeError):
    """A stack's outputs do not carry what its contract promises."""


class Orchestrator:
    """Plans and runs environments of a contracts library through one engine, remembering in ``registry``.

    ``retries`` transient engine errors per stack, ``backoff_s`` doubling between them; ``clock`` stamps the run
    times; ``engine_config`` is stack config every stack gets (a local target's endpoint, for example).
    """

    def __init__(self, library: ContractLibrary, registry: RegistryBackend, engine: Engine, *, parallel: int = 8,
                 reporter: Reporter | None = None, retries: int = 2, backoff_s: float = 1.0,
                 clock: Clock = utcnow, engine_config: dict[str, str] | None = None):
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
        #: Break a lock left by a process that is gone, on every run (``--force-unlock``).
        self.force_unlock = False
        #: With ``force_unlock``: also break a live lease (``--force``; a lease's holder may be alive elsewhere).
        self.force = False
        self._cancel = threading.Event()
        self._fixed_parts: dict[tuple[str, str, str | None, str], dict[str, str]] = {}
        #: Lifecycle events: an object with ``emit(detail_type, detail)`` that never raises; None: none sent.
        self.events: Emitter | None = None
        #: Stack outputs to SSM Parameter Store (environments that say ``publish: ssm``), and read back from there
        #: for producers this registry does not know; None: neither.
        self.outputs: OutputsPublisher | None = None
        #: Tags of environments made on demand, by environment (set by the ephemeral-environment service).
        self.tags: dict[str, dict[str, str]] = {}

    @property
    def simulated(self) -> bool:
        return getattr(self.engine, "name", "") == "simulated"

    # -- which stacks ------------------------------------------------------------------------------------------

    def _where(self, env: str, base_env: str | None, reuse: Iterable[str]) -> tuple[str | None, list[str]]:
        """The base and reused contexts of ``env``: none for a long-lived one, the recorded ones for an
        environment made on demand."""
        if env in self.library.environments.environments:
            if base_env not in (None, env):
                raise UsageError(f"{env!r} is a long-lived environment: it has no base")
            return None, []
        if base_env is None:
            record = self.registry.environment(env)
            if record is None or not record.ephemeral or record.base is None:
                self.library.environment(env)  # UnknownEnvironmentError naming the known ones
            else:
                return record.base, list(reuse) or list(record.reuse)
        self.library.environment(base_env)  # type: ignore[arg-type]
        return base_env, list(reuse)

    def graph(self, env: str, contexts: Iterable[str] | None = None, *, base_env: str | None = None,
              reuse: Iterable[str] = ()) -> EnvGraph:
        """The graph of what ``env`` deploys: ``contexts`` and what they need (all when None), minus ``reuse``."""
        base, reused = self._where(env, base_env, reuse)
        graph = EnvGraph.resolve(self.library, base or env)
        if contexts is not None:
            graph = graph.subgraph_for(list(contexts))
        return graph.without(reused) if reused else graph

    def stack_spec(self, env: str, context: str, base: str | None = None, upstream: dict[str, Any] | None = None,
                   secret: frozenset[tuple[str, str, str]] = frozenset()) -> StackSpec:
        """What the engine is given for ``context`` in ``env`` (``base``: the base of an environment made on demand):
        the project, the upstream outputs (``secret`` naming the secret ones), this orchestrator's stack config and
        the tags of an environment made on demand."""
        config = dict(self.engine_config)
        tags = self._tags(env) if base is not None else None
        if tags:
            config[CONFIG_TAGS] = json.dumps(tags, sort_keys=True)
        return StackSpec(project=self.library.project, env=env, context=context, contracts_dir=self.library.root,
                         base_env=base, upstream=upstream or {}, secret_upstream=secret, config=config)

    _spec = stack_spec  # the name earlier callers used

    def _tags(self, env: str) -> dict[str, str]:
        """The tags of an environment made on demand, from its record (read once per orchestrator)."""
        if env not in self.tags:
            record = self.registry.environment(env)
            self.tags[env] = environment_tags(record) if record is not None and record.ephemeral else {}
        return self.tags[env]

    def _fingerprint(self, spec: StackSpec) -> tuple[str, dict[str, str]]:
        """The stack's fingerprint, and the digest of each of its parts (to say what changed)."""
        # Tags say who made an environment and until when: they change no resource's shape (see CONFIG_TAGS).
        config = {k: v for k, v in spec.config.items() if k != CONFIG_TAGS}
        key = (spec.env, spec.context, spec.base_env, json.dumps(config, sort_keys=True))
        fixed = self._fixed_parts.get(key)
        if fixed is None:  # the library does not change during a run: these parts are computed once
            ctx = self.library.contexts[spec.context]
            # Where outputs and events are published changes no resource: left out, so turning them on redeploys
            # nothing.
            place = self.library.environment(spec.settings_env).model_dump(mode="json",
                                                                           exclude={"publish", "events"})
            contract = ctx.model_dump(mode="json", exclude={"settings", "overrides", "description", "environments"})
            fixed = self._fixed_parts[key] = {
                "contract": digest(contract),
                "settings": digest(ctx.settings_for(spec.settings_env)),
                "code": code_digests().get(ctx.component, ""),
                "place": digest([self.library.project, spec.env, spec.base_env, place, config]),
            }
            service = service_code_digest(self.library, spec.context, spec.settings_env)
            if service:  # only contexts with code of their own have the part: others keep their fingerprints
                fixed["service_code"] = service
        parts = {**fixed, "upstream": digest([spec.upstream, sorted(spec.secret_upstream)])}
        return digest(parts), parts

    def _orphans(self, env: str) -> list[StackRecord]:
        """Stacks the registry holds in ``env`` for contexts the library no longer has."""
        return [s for s in self.registry.stacks(env) if s.context not in self.library.contexts]

    def _orphan_reason(self, env: str, context: str) -> str:
        return (f"context {context!r} is no longer in the library, but its stack is deployed: "
                f"`ode destroy --env {env} --contexts {context}` removes it")

    # -- upstream outputs ----------------------------------------------------------------------------------------

    def _upstream(self, env: str, context: str, base: str | None, produced: dict[str, StackOutcome],
                  reused: set[str]) -> tuple[dict[str, Any], frozenset[tuple[str, str, str]]]:
        """The producers' outputs ``context`` needs: from this run, from the registry, or from the base
        environment for reused producers. Secret ones are read back from the engine, never from the registry."""
        upstream: dict[str, dict[str, Any]] = {}
        secret: set[tuple[str, str, str]] = set()
        read_back: dict[tuple[str, str], dict[str, Any]] = {}
        for link in self.library.links(context):
            if not link.deploy:
                continue
            source_env = base if (link.producer in reused and base) else env
            outcome = produced.get(link.producer) if source_env == env else None
            if outcome is not None:
                outputs, secrets = outcome.outputs, outcome.secret_outputs
            else:
                found = self._deployed(source_env, link.producer)
                if found is None:
                    raise OdeError(f"{source_env}.{link.producer} is not deployed, and {env}.{context} needs its "
                                   f"{link.interface!r}: run `ode up --env {source_env} --contexts {link.producer}`")
                outputs, secrets = found
            if link.interface in secrets and link.interface not in outputs:
                # An unchanged producer's outcome carries the registry's outputs, which never hold secret values:
                # those are read back from the engine (Pulumi's encrypted state), once per producer.
                key = (source_env, link.producer)
                if key not in read_back:
                    spec = self.stack_spec(source_env, link.producer, base if source_env == env else None)
                    try:
                        read_back[key] = self.engine.outputs(spec)
                    except EngineError as exc:
                        raise OdeError(f"{source_env}.{link.producer}: its secret output {link.interface!r}, which "
                                       f"{env}.{context} consumes, could not be read from the engine: "
                                       f"{str(exc).splitlines()[0]}") from None
                outputs = {**outputs, **{k: v for k, v in read_back[key].items() if k in secrets}}
            if link.interface not in outputs:
                raise OdeError(f"{source_env}.{link.producer} has no output {link.interface!r}, which "
                               f"{env}.{context} consumes: redeploy it")
            upstream.setdefault(link.producer, {})[link.interface] = outputs[link.interface]
            if link.interface in secrets:
                value = outputs[link.interface]
                for name in (value if isinstance(value, dict) else {}):
                    secret.add((link.producer, link.interface, name))
        return upstream, frozenset(secret)

    def _deployed(self, env: str, producer: str) -> tuple[dict[str, Any], frozenset[str]] | None:
        """A deployed producer's outputs and secret names: from the registry, else (an environment that says
        ``publish: ssm``) from SSM Parameter Store, where another repository's or runner's ode published them.
        Outputs read from SSM carry their secret values (in memory only); the registry's never do."""
        rec = self.registry.stack(env, producer)
        if rec is not None and rec.status == StackStatus.SUCCEEDED:
            return rec.outputs, frozenset(rec.secret_outputs)
        if rec is None and self.outputs is not None:
            found = self.outputs.read(env, producer)
            if found is not None:
                return found
        return None

    def check_outputs(self, context: str, outputs: dict[str, Any]) -> None:
        """Raise :class:`OutputContractError` when ``outputs`` lack an interface or a field the contract
        promises."""
        problems = []
        for name, iface in self.library.contexts[context].provides.items():
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

    # -- plan ----------------------------------------------------------------------------------------------------

    def plan(self, env: str, contexts: Iterable[str] | None = None, *, base_env: str | None = None,
             reuse: Iterable[str] = (), preview: bool = True) -> Plan:
        """Which stacks ``up`` would deploy, in which order, which are unchanged and why; with ``preview``, each
        stack to deploy is previewed by the engine (its resources and changes)."""
        base, reused_list = self._where(env, base_env, reuse)
        reused = set(reused_list)
        if contexts is None and base_env is None and base is not None:  # `ode plan --env pr-1`: what it holds
            record = self.registry.environment(env)
            contexts = record.contexts if record is not None and record.ephemeral else None
        graph = self.graph(env, contexts, base_env=base, reuse=reused)
        plan = Plan(env=env, engine=self.engine.name, operation="plan", simulated=self.simulated)
        for orphan in self._orphans(env):
            plan.stacks.append(PlannedStack(stack=orphan.stack, context=orphan.context, action=PlanAction.ORPHANED,
                                            reason=self._orphan_reason(env, orphan.context)))
        produced: dict[str, StackOutcome] = {}
        deploying: set[str] = set()
        for context in graph.contexts:
            stack = f"{env}.{context}"
            producers = graph.producers_of(context)
            item = PlannedStack(stack=stack, context=context, action=PlanAction.DEPLOY, reason="",
                                producers=[f"{env}.{p}" for p in producers])
            plan.stacks.append(item)
            rec = self.registry.stack(env, context)
            waiting = [p for p in producers if p in deploying and p not in produced]
            if waiting:
                item.reason = (f"after {', '.join(f'{env}.{p}' for p in waiting)}: deployed if their outputs "
                               "change, or its own inputs did")
                deploying.add(context)
                continue
            try:
                upstream, secret = self._upstream(env, context, base, produced, reused)
            except OdeError as exc:
                item.reason, item.error = "cannot be planned", str(exc)
                deploying.add(context)
                continue
            spec = self.stack_spec(env, context, base, upstream, secret)
            fingerprint, parts = self._fingerprint(spec)
            if rec is not None and rec.status == StackStatus.SUCCEEDED and rec.fingerprint == fingerprint:
                item.action, item.reason = PlanAction.UNCHANGED, "fingerprint matches the last deploy"
                item.resources = []
                produced[context] = StackOutcome(stack, context, StackStatus.UNCHANGED, outputs=rec.outputs,
                                                 secret_outputs=frozenset(rec.secret_outputs))
                continue
            item.reason = why(rec, parts)
            deploying.add(context)
            if not preview:
                continue
            try:
                result = self.engine.preview(spec)
            except EngineError as exc:
                item.error = str(exc)
                continue
            item.changes = result.changes
            item.resources = [r.to_dict() for r in result.resources]
            if result.outputs:
                produced[context] = StackOutcome(stack, context, StackStatus.SUCCEEDED, outputs=result.outputs,
                                                 secret_outputs=result.secret_outputs)
        return plan

    # -- up ------------------------------------------------------------------------------------------------------

    def up(self, env: str, contexts: Iterable[str] | None = None, *, base_env: str | None = None,
           reuse: Iterable[str] = (), force_unlock: bool = False, run_id: int | None = None,
           force: Iterable[str] = ()) -> RunResult:
        """Deploy ``env`` (or ``contexts`` and what they need) and return how each stack ended.

        ``force`` names contexts deployed even though their fingerprint matches (a drifted stack being healed: its
        inputs did not change, the cloud did); their consumers still redeploy only if its outputs change.

        On an environment made on demand (``ode up --env pr-1``), no ``contexts`` means the ones it was made with;
        contexts given are added to its record. ``run_id``: a run whose lock the caller holds already (see
        :meth:`hold`); it is then neither taken nor released here.
        """
        base, reused_list = self._where(env, base_env, reuse)
        reused = set(reused_list)
        record = self.registry.environment(env) if base_env is None and base is not None else None
        grown: list[str] | None = None
        if record is not None and record.ephemeral:
            if contexts is None:
                contexts = record.contexts
            elif record.contexts is not None:
                grown = sorted({*record.contexts, *contexts})
        graph = self.graph(env, contexts, base_env=base, reuse=reused)
        if base is not None:  # reused producers must be deployed in the base before anything starts
            for context in graph.contexts:
                for link in self.library.links(context):
                    if link.deploy and link.producer in reused:
                        if self._deployed(base, link.producer) is None:
                            raise OdeError(f"{base}.{link.producer} is reused by {env} but is not deployed in "
                                           f"{base}: run `ode up --env {base} --contexts {link.producer}` first")
        order = graph.contexts
        deps: dict[str, set[str]] = {c: set(graph.producers_of(c)) for c in order}
        result = RunResult(env=env, engine=self.engine.name, operation="up", simulated=self.simulated)
        with self._run(env, "up", run_id, force_unlock) as run:
            if base is None:
                self.registry.ensure_environment(env)
            if record is not None and grown is not None and grown != record.contexts:
                self.registry.put_environment(replace(record, contexts=grown))
            self._up(env, base, reused, order, deps, result, run, set(force))
            if record is not None and record.ephemeral and not result.interrupted:
                self.registry.set_environment_status(
                    env, EnvironmentStatus.ACTIVE if result.ok else EnvironmentStatus.FAILED)
        return result

    def _up(self, env: str, base: str | None, reused: set[str], order: Sequence[str], deps: dict[str, set[str]],
            result: RunResult, run: Run, force: set[str] | None = None) -> None:
        run_id = run.id
        produced: dict[str, StackOutcome] = {}
        lock = threading.Lock()

        def work(context: str) -> StackOutcome:
            with lock:
                done = dict(produced)
            outcome = self._up_one(env, context, base, done, reused, run_id, context in (force or ()))
            with lock:
                produced[context] = outcome
            return outcome

        result.stacks, result.interrupted = self._schedule(env, "up", order, deps, work)
        if self.events is not None:
            for failed in (s for s in result.stacks if s.status == StackStatus.FAILED):
                skipped = [s.stack for s in result.stacks
                           if s.status == StackStatus.SKIPPED and failed.stack in (s.reason or "")]
                self.events.emit(*stack_failed(env, failed.context, engine=self.engine.name, error=failed.error or "",
                                               duration_s=failed.duration_s, skipped=skipped,
                                               simulated=self.simulated))
        orphans = {s.context for s in result.stacks}
        for rec in self._orphans(env):
            if rec.context not in orphans:
                result.stacks.append(StackOutcome(rec.stack, rec.context, StackStatus.ORPHANED, rec.started_at,
                                                  rec.finished_at, reason=self._orphan_reason(env, rec.context)))
        run.status = run_status(result)

    # -- locks ---------------------------------------------------------------------------------------------------

    @contextmanager
    def hold(self, env: str, command: str, *, force_unlock: bool = False) -> Iterator[Run]:
        """Take ``env``'s lock for the block and record the run; the block sets ``run.status``. However the block
        ends, the run is recorded (``failed`` unless the block said otherwise, so that a crash is never recorded as
        a success) and the lock released."""
        with self._run(env, command, None, force_unlock) as run:
            yield run

    def _run(self, env: str, command: str, run_id: int | None, force_unlock: bool) -> AbstractContextManager[Run]:
        return runs.held(self.registry, env, command, self.engine.name, run_id=run_id,
                         force_unlock=force_unlock or self.force_unlock, force=self.force)

    def _up_one(self, env: str, context: str, base: str | None, produced: dict[str, StackOutcome],
                reused: set[str], run_id: int, forced: bool = False) -> StackOutcome:
        stack = f"{env}.{context}"
        started = self.clock()
        t0 = time.perf_counter()
        try:
            upstream, secret = self._upstream(env, context, base, produced, reused)
        except OdeError as exc:
            return self._failed(stack, context, started, t0, str(exc), 0)
        spec = self.stack_spec(env, context, base, upstream, secret)
        fingerprint, parts = self._fingerprint(spec)
        rec = self.registry.stack(env, context)
        if rec is not None and rec.status == StackStatus.SUCCEEDED and rec.fingerprint == fingerprint and not forced:
            return StackOutcome(stack, context, StackStatus.UNCHANGED, outputs=rec.outputs,
                                secret_outputs=frozenset(rec.secret_outputs),
                                reason="fingerprint matches the last deploy")
        reason = "drifted: healing" if forced and rec is not None and rec.fingerprint == fingerprint else why(
            rec, parts)
        self.reporter.handle(StackChanged(stack, RUNNING, reason))
        self.registry.mark_running(env, context, engine=self.engine.name, started_at=iso(started) or "",
                                   run_id=run_id)
        attempts = 0
        while True:
            attempts += 1
            try:
                res: StackResult = self.engine.up(spec, self.progress)
                self.check_outputs(context, res.outputs)
                break
            except EngineError as exc:
                if exc.transient and attempts <= self.retries and not self._cancel.is_set():
                    self.reporter.handle(StackChanged(stack, RUNNING, f"retrying after: {exc}"))
                    time.sleep(self.backoff_s * 2 ** (attempts - 1))
                    continue
                return self._failed(stack, context, started, t0, _error_text(exc), attempts, record=True)
            except OdeError as exc:
                return self._failed(stack, context, started, t0, str(exc), attempts, record=True)
            except Exception as exc:  # noqa: BLE001 - a bug in an engine must not take the other stacks down
                return self._failed(stack, context, started, t0, f"{type(exc).__name__}: {exc}", attempts,
                                    record=True)
        finished = self.clock()
        duration = time.perf_counter() - t0
        public = {k: v for k, v in res.outputs.items() if k not in res.secret_outputs}
        self.registry.record_success(env, context, fingerprint=fingerprint, inputs=parts, outputs=public,
                                     secret_outputs=sorted(res.secret_outputs), engine=self.engine.name,
                                     simulated=res.simulated, started_at=iso(started) or "",
                                     finished_at=iso(finished) or "", duration_s=duration)
        self._published(env, context, res)
        return StackOutcome(stack, context, StackStatus.SUCCEEDED, iso(started), iso(finished), duration, res.outputs,
                            frozenset(res.secret_outputs), reason=reason, attempts=attempts, changes=res.changes)

    def _published(self, env: str, context: str, res: StackResult) -> None:
        """Tell other tooling that a stack deployed: its outputs to SSM, a StackSucceeded event. Neither can fail
        the stack: a publishing error is one warning line."""
        if self.outputs is not None:
            self.outputs.publish(env, context, res.outputs, res.secret_outputs)
        if self.events is not None:
            self.events.emit(*stack_succeeded(env, context, engine=self.engine.name, duration_s=res.duration_s,
                                              outputs=res.outputs, secret_outputs=res.secret_outputs,
                                              simulated=res.simulated))

    def _failed(self, stack: str, context: str, started: datetime, t0: float, error: str, attempts: int,
                record: bool = False) -> StackOutcome:
        finished = self.clock()
        duration = time.perf_counter() - t0
        if record:
            env = stack[: -len(context) - 1]
            try:
                self.registry.record_failure(env, context, error=error, finished_at=iso(finished) or "",
                                             duration_s=duration)
            except Exception as exc:  # noqa: BLE001 - the stack's own error must reach the user all the same
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                error = f"{error} (and the registry could not record it: {reason})"
        return StackOutcome(stack, context, StackStatus.FAILED, iso(started), iso(finished), duration, error=error,
                            attempts=attempts)

    def progress(self, stack: str, line: str) -> None:
        """The engines' progress callback: one line of ``stack``'s engine, told to the reporter as an event."""
        self.reporter.handle(engine_line(stack, line))

    # -- destroy -------------------------------------------------------------------------------------------------

    def dependent_environments(self, env: str, contexts: Iterable[str] | None = None) -> list[EnvironmentRecord]:
        """The live environments made on demand from ``env`` that reuse any of its stacks (of ``contexts``, when
        given)."""
        found = []
        for rec in self.registry.environments():
            if not rec.ephemeral or rec.base != env or rec.status == EnvironmentStatus.DESTROYED or rec.name == env:
                continue
            if contexts is None or set(rec.reuse) & set(contexts):
                if rec.reuse:
                    found.append(rec)
        return found

    def destroy(self, env: str, contexts: Iterable[str] | None = None, *, base_env: str | None = None,
                reuse: Iterable[str] = (), force_unlock: bool = False, with_dependents: bool = False,
                run_id: int | None = None) -> RunResult:
        """Destroy ``env``'s stacks (or ``contexts`` and every stack that needs them) in reverse order: a stack
        goes once every stack that consumes it is gone. Reused base stacks are never touched.

        A base environment whose stacks are reused by live environments made on demand is refused (they are
        named), unless ``with_dependents``: they are then destroyed first. An environment the registry has no
        record of is an error (a wrong ``--state-dir`` must not look like an empty environment)."""
        base, _reused = self._where(env, base_env, reuse)
        if base is None and self.library.environment(env).protected:
            raise ProtectedEnvironmentError(f"environment {env!r} is protected (environments.yaml): ode never "
                                            "destroys it")
        if not runs.knows(self.registry, env):
            where = getattr(self.registry, "path", None) or getattr(self.registry, "url", None) or "the registry"
            raise UsageError(f"{where} has no record of environment {env!r}: nothing of it was deployed with this "
                             "registry (check --state-dir or --registry)")
        recorded = {s.context for s in self.registry.stacks(env)}
        if contexts is not None:
            wanted = set(contexts)
            unknown = sorted(wanted - recorded)
            if unknown:
                raise UsageError(f"--contexts: {', '.join(unknown)} not deployed in {env}")
            grow = True
            while grow:  # add every recorded consumer of what goes
                extra = {c for c in recorded - wanted if c in self.library.contexts and any(
                    link.deploy and link.producer in wanted for link in self.library.links(c))}
                grow = bool(extra)
                wanted |= extra
            recorded = wanted
        going = recorded
        dependents = self.dependent_environments(env, going) if base is None else []
        if dependents and not with_dependents:
            names = ", ".join(f"{d.name} (reuses {', '.join(sorted(set(d.reuse) & going))})" for d in dependents)
            raise UsageError(f"environments made on demand reuse stacks of {env}: {names}; destroy them first "
                             "(`ode env destroy NAME`), or pass --with-ephemeral to destroy them too")
        if dependents:
            for dep in dependents:
                self.registry.set_environment_status(dep.name, EnvironmentStatus.DESTROYING)
                done = self.destroy(dep.name, base_env=dep.base, reuse=dep.reuse, force_unlock=force_unlock)
                self.registry.set_environment_status(
                    dep.name, EnvironmentStatus.DESTROYED if done.ok else EnvironmentStatus.FAILED)
                if not done.ok:
                    failed = "; ".join(f"{s.stack}: {s.error}" for s in done.stacks if s.status == StackStatus.FAILED)
                    raise OdeError(f"{dep.name} (which reuses stacks of {env}) could not be destroyed, so {env} was "
                                   f"left as it is: {failed or 'interrupted'}")
        consumers: dict[str, set[str]] = {c: set() for c in recorded}
        for c in recorded:
            if c in self.library.contexts:
                for link in self.library.links(c):
                    if link.deploy and link.producer in recorded and link.producer != c:
                        consumers[link.producer].add(c)
        position = self.positions(base or env)
        order = sorted(recorded, key=lambda c: (-position.get(c, len(position)), c))
        result = RunResult(env=env, engine=self.engine.name, operation="destroy", simulated=self.simulated)
        with self._run(env, "destroy", run_id, force_unlock) as run:

            def work(context: str) -> StackOutcome:
                return self._destroy_one(env, context, base, run.id)

            result.stacks, result.interrupted = self._schedule(env, "destroy", order, consumers, work)
            run.status = run_status(result)
            if result.ok and not self.registry.stacks(env):  # `ode destroy --env pr-1` too: env list must say so
                self.registry.set_environment_status(env, EnvironmentStatus.DESTROYED)
                if self.events is not None:
                    record = self.registry.environment(env)
                    self.events.emit(*environment_destroyed(
                        env, base=base, ephemeral=base is not None, stacks=len(result.stacks),
                        owner=record.owner if record else None, expires_at=record.expires_at if record else None))
        return result

    def _destroy_one(self, env: str, context: str, base: str | None, run_id: int) -> StackOutcome:
        stack = f"{env}.{context}"
        started = self.clock()
        t0 = time.perf_counter()
        self.reporter.handle(StackChanged(stack, RUNNING))
        self.registry.mark_running(env, context, engine=self.engine.name, started_at=iso(started) or "",
                                   run_id=run_id, operation="destroy")
        attempts = 0
        while True:
            attempts += 1
            try:
                res = self.engine.destroy(self.stack_spec(env, context, base), self.progress)
                break
            except EngineError as exc:
                if exc.transient and attempts <= self.retries and not self._cancel.is_set():
                    time.sleep(self.backoff_s * 2 ** (attempts - 1))
                    continue
                return self._failed(stack, context, started, t0, _error_text(exc), attempts, record=True)
            except Exception as exc:  # noqa: BLE001 - one stack's failure must not take the others down
                return self._failed(stack, context, started, t0, f"{type(exc).__name__}: {exc}", attempts,
                                    record=True)
        self.registry.forget_stack(env, context)
        if self.outputs is not None:
            self.outputs.unpublish(env, context)
        finished = self.clock()
        return StackOutcome(stack, context, StackStatus.DESTROYED, iso(started), iso(finished),
                            time.perf_counter() - t0, attempts=attempts, changes=res.changes)

    def positions(self, env: str) -> dict[str, int]:
        """Each context's place in ``env``'s deploy order; empty when the environment is unknown."""
        try:
            return {c: i for i, c in enumerate(EnvGraph.resolve(self.library, env).contexts)}
        except OdeError:
            return {}

    # -- status ----------------------------------------------------------------------------------------------

    def status(self, env: str, contexts: Iterable[str] | None = None) -> RunResult:
        """What the registry knows of ``env``'s stacks (in deploy order), without running anything."""
        records = {s.context: s for s in self.registry.stacks(env)}
        wanted = set(contexts) if contexts is not None else set(records)
        try:
            base, _ = self._where(env, None, ())
        except OdeError:
            base = None
        position = self.positions(base or env)
        result = RunResult(env=env, engine=self.engine.name, operation="status", simulated=self.simulated)
        for context in sorted(wanted & set(records), key=lambda c: (position.get(c, len(position)), c)):
            rec: StackRecord = records[context]
            result.stacks.append(StackOutcome(
                rec.stack, context, StackStatus(rec.status), rec.started_at, rec.finished_at, rec.duration_s,
                rec.outputs,
                frozenset(rec.secret_outputs), rec.error,
                reason=f"last deployed by the {rec.engine} engine" if rec.engine else None))
        result.simulated = any(r.simulated for r in records.values())
        return result

    # -- the scheduler -------------------------------------------------------------------------------------------

    def run_each(self, env: str, operation: str, order: Sequence[str], deps: dict[str, set[str]],
                 work: Callable[[str], StackOutcome]) -> tuple[list[StackOutcome], bool]:
        """Run ``work`` on the contexts of ``order`` through this orchestrator's scheduler: each once all of its
        ``deps`` ended well, at most ``parallel`` at once, in ``order``'s priority, with progress told to the
        reporter; a context whose dependency failed is skipped. Returns the outcomes in ``order`` and whether the run
        was interrupted. The caller holds ``env``'s lock (see :meth:`hold`). Drift checks and heals run on it."""
        return self._schedule(env, operation, order, deps, work)

    def _schedule(self, env: str, operation: str, order: Sequence[str], deps: dict[str, set[str]],
                  work: Callable[[str], StackOutcome]) -> tuple[list[StackOutcome], bool]:
        """Run ``work`` on every node of ``order`` once all of its ``deps`` ended well, at most ``parallel`` at
        once, in ``order``'s priority; skip the nodes that need a failed one. Returns the outcomes in ``order``
        and whether the run was interrupted (Ctrl-C: nothing new starts, running stacks finish)."""
        # Critical path first: last known durations where the registry has them (see ode.execution.scheduler).
        known = {s.context: s.duration_s for s in self.registry.stacks(env) if s.duration_s}
        queue = ReadyQueue(order, deps, weights=known, parallel=self.parallel)
        outcomes: dict[str, StackOutcome] = {}
        self._cancel.clear()
        self.reporter.handle(RunStarted(env, operation, tuple(f"{env}.{c}" for c in order)))

        def judge(c: str, outcome: StackOutcome) -> str | None:
            outcomes[c] = outcome
            self.reporter.handle(StackChanged(outcome.stack, outcome.status, outcome.error or outcome.reason or ""))
            if outcome.status in GOOD:
                return None
            inherited = outcome.reason if outcome.status == StackStatus.SKIPPED else None
            return inherited or f"{outcome.stack} {outcome.status}"

        def skip(s: Skip) -> None:
            outcomes[s.node] = StackOutcome(f"{env}.{s.node}", s.node, StackStatus.SKIPPED, reason=s.cause,
                                            error=f"skipped: {s.cause}")
            self.reporter.handle(StackChanged(f"{env}.{s.node}", StackStatus.SKIPPED, s.cause))

        def guarded(c: str) -> StackOutcome:
            # What escapes a stack's work (a registry write that failed, a bug) fails that stack, never the
            # run's record: nothing is recorded as done that was not done.
            try:
                return work(c)
            except Exception as error:  # noqa: BLE001 - one stack's failure must not take the run down
                text = str(error) if isinstance(error, OdeError) else f"{type(error).__name__}: {error}"
                return StackOutcome(f"{env}.{c}", c, StackStatus.FAILED,
                                    error=text.splitlines()[0] if text else type(error).__name__)

        def interrupt(running: int) -> None:
            self._cancel.set()
            self.reporter.handle(RunInterrupted(env, running))

        try:
            _, interrupted = run_ready(queue, guarded, judge=judge, on_skip=skip, on_interrupt=interrupt)
        finally:
            self.reporter.handle(RunFinished(env))
        for c in order:
            if c not in outcomes:
                outcomes[c] = StackOutcome(f"{env}.{c}", c, StackStatus.SKIPPED, reason="interrupted before it started",
                                           error="skipped: the run was interrupted")
        return [outcomes[c] for c in order], interrupted



def _error_text(exc: EngineError) -> str:
    text = str(exc)
    if exc.detail:
        tail = exc.detail.strip().splitlines()[-5:]
        text += "\n" + "\n".join(tail)
    return text

