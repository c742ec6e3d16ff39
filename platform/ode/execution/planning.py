"""The planner: what an operation covers and whether each stack deploys, as plain data, with no registry write and
no engine operation.

    planner = Planner(library, registry, read_outputs=engine.outputs)
    scope = planner.up_scope("dev", ["orders"])              # which stacks, in which order, waiting on what
    for item in planner.walk(scope):                         # what `ode plan --no-preview` shows
        print(item.stack, item.action, item.reason)
    item = planner.decide(scope, "orders", produced)         # what `up` does with a stack once it is ready

``plan`` and ``up`` take the same decisions here: a stack's upstream values (from this run's producers, the
registry, SSM Parameter Store, or the base of an environment made on demand), its spec, its fingerprint and its
parts, and why it deploys or not. A stack's fingerprint covers its contract, its resolved settings, the code of
its component kind (:func:`ode.component_code.code_digests`), its team's own code, its environment's place
(account, region, role) and its upstream outputs. The planner reads the library and the registry; the only other
thing it reads is a producer's secret outputs, through ``read_outputs`` (an unchanged producer's secret values are
never in the registry): it never deploys, previews, refreshes or destroys anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from components.code import CodeDirectoryError, code_directories, directory_digest

from ..component_code import code_digests
from ..contracts import ContractLibrary
from ..errors import OdeError, ProtectedEnvironmentError, UsageError
from ..graph import EnvGraph
from ..program import CONFIG_TAGS, StackSpec
from ..publishing.ssm_outputs import PublishError
from ..registry.protocol import RegistryBackend
from ..registry.records import EnvironmentRecord, StackRecord
from ..status import EnvironmentStatus, PlanAction, StackStatus
from .runs import knows

log = logging.getLogger(__name__)

#: What each part of a fingerprint is called when it changed.
PART_LABELS = {"contract": "contract", "settings": "settings", "code": "component code", "place": "environment",
               "upstream": "upstream outputs", "service_code": "service code"}


def digest(value: Any) -> str:
    """A short, stable digest of a JSON-able value (keys sorted)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def service_code_digest(library: ContractLibrary, context: str, env: str) -> str:
    """A digest of the team's own code of ``context`` in ``env`` (its ``settings.code`` or ``settings.build``
    directory): a changed file there redeploys that stack. Empty when the context runs no code of its own."""
    path = library.files.get(context) or library.root / f"{context}.yaml"
    folders = code_directories(library.contexts[context].settings_for(env), path.resolve().parent)
    try:
        return digest({name: directory_digest(folder) for name, folder in sorted(folders.items())}) if folders else ""
    except CodeDirectoryError as exc:  # changed since the library was checked: said as `ode validate` says it
        raise OdeError(f"{library.label(context)}: settings: {exc}") from None


def why(rec: StackRecord | None, parts: dict[str, str]) -> str:
    """Why a stack deploys: new, interrupted, failed last time, or which parts of its fingerprint changed."""
    if rec is None:
        return "new stack"
    if rec.status in (StackStatus.RUNNING, StackStatus.DESTROYING):
        return "its last run was interrupted"
    if rec.status == StackStatus.FAILED:
        return "its last run failed"
    changed = [k for k, v in parts.items() if rec.inputs.get(k) != v]
    return ("changed: " + ", ".join(PART_LABELS[k] for k in changed)) if changed else "fingerprint changed"


def environment_tags(record: EnvironmentRecord) -> dict[str, str]:
    """The tags every resource of an environment made on demand carries: ``ode:created-by``, ``ode:expires-at``
    and, for a pull request's environment (``pr-<N>``), ``ode:pr``."""
    tags = {"ode:created-by": record.owner or "unknown"}
    if record.expires_at:
        tags["ode:expires-at"] = record.expires_at
    match = re.fullmatch(r"pr-(\d+)", record.name)
    if match:
        tags["ode:pr"] = match.group(1)
    return tags


# -- the plan, as plain data -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Produced:
    """What a producer hands its consumers: its outputs (secret values included, in memory only) and the names of
    the secret ones."""

    outputs: dict[str, Any]
    secret_outputs: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Scope:
    """The stacks one operation covers in one environment: ``order`` (deploy order, producers first), what each
    waits for (``deps``: its producers for ``up``, its consumers for ``destroy``), the base and reused contexts of
    an environment made on demand, its record, and the contexts it grows to (``up --contexts`` on it)."""

    env: str
    base: str | None
    reused: frozenset[str]
    order: list[str]
    deps: dict[str, set[str]]
    producers: dict[str, list[str]] = field(default_factory=dict)
    record: EnvironmentRecord | None = None
    grown: list[str] | None = None
    #: ``destroy``: live environments made on demand that reuse what goes (destroyed first).
    dependents: list[EnvironmentRecord] = field(default_factory=list)


@dataclass
class StackPlan:
    """What the planner decided for one stack: everything a runner needs, here or on another machine."""

    stack: str
    context: str
    env: str
    base: str | None
    action: PlanAction
    reason: str
    producers: list[str] = field(default_factory=list)
    spec: StackSpec | None = None
    fingerprint: str | None = None
    #: The digest of each part of the fingerprint (to say what changed).
    parts: dict[str, str] = field(default_factory=dict)
    #: The stack's registry record when it was planned.
    record: StackRecord | None = None
    #: Why it cannot be planned (a producer not deployed, a secret output that cannot be read).
    error: str | None = None


#: The simulated engine's name: what it records in the registry's ``engine`` field.
SIMULATED_ENGINE = "simulated"


class RehearsalError(UsageError):
    """A simulated run (a rehearsal) would replace what a real engine deployed: refused before anything is
    written (exit 2)."""


def deployed_for_real(record: StackRecord) -> bool:
    """Whether a real engine wrote this stack's record last: it deployed the stack (a success not simulated), or
    started to (running, destroying or failed with a real engine)."""
    if record.status == StackStatus.SUCCEEDED:
        return not record.simulated
    return record.engine not in (None, "", SIMULATED_ENGINE)


#: Reads a deployed stack's outputs, secret values included, from where the engine keeps them.
OutputsReader = Callable[[StackSpec], dict[str, Any]]


class Planner:
    """Decides what an operation covers and whether each stack deploys (see the module's docstring).

    ``read_outputs`` reads an unchanged producer's secret outputs (the engine's state); ``published`` reads
    producers that this registry does not know from SSM Parameter Store (``.read(env, context)``, ``.simulated(env,
    context)``), None for none; ``engine_config`` is stack config every stack gets; ``tags`` the tags of
    environments made on demand, by environment (read from their records when missing); ``simulated``: the run is
    a rehearsal (it never consumes, nor replaces, what a real engine deployed); ``fixed`` caches the parts of a
    fingerprint that do not change during a run.
    """

    def __init__(self, library: ContractLibrary, registry: RegistryBackend, *,
                 read_outputs: OutputsReader | None = None, published: Any = None,
                 engine_config: Mapping[str, str] | None = None, tags: dict[str, dict[str, str]] | None = None,
                 simulated: bool = False, fixed: dict[tuple[str, str, str | None, str], dict[str, str]] | None = None):
        self.library = library
        self.registry = registry
        self.read_outputs = read_outputs
        self.published = published
        self.engine_config = dict(engine_config or {})
        self.tags = tags if tags is not None else {}
        self.simulated = simulated
        self._fixed = fixed if fixed is not None else {}

    # -- where and which ---------------------------------------------------------------------------------------

    def where(self, env: str, base_env: str | None, reuse: Iterable[str]) -> tuple[str | None, list[str]]:
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
        base, reused = self.where(env, base_env, reuse)
        graph = EnvGraph.resolve(self.library, base or env)
        if contexts is not None:
            graph = graph.subgraph_for(list(contexts))
        return graph.without(reused) if reused else graph

    def positions(self, env: str) -> dict[str, int]:
        """Each context's place in ``env``'s deploy order; empty when the environment is unknown."""
        try:
            return {c: i for i, c in enumerate(EnvGraph.resolve(self.library, env).contexts)}
        except OdeError:
            return {}

    def up_scope(self, env: str, contexts: Iterable[str] | None = None, *, base_env: str | None = None,
                 reuse: Iterable[str] = (), check_reused: bool = True) -> Scope:
        """What ``up`` (and ``plan``) covers: ``contexts`` and what they need, in deploy order. On an environment
        made on demand, no ``contexts`` means the ones it was made with, and contexts given grow its record.
        ``check_reused``: the reused producers must be deployed in the base (an :class:`OdeError` otherwise)."""
        base, reused_list = self.where(env, base_env, reuse)
        reused = set(reused_list)
        record = self.registry.environment(env) if base_env is None and base is not None else None
        wanted = list(contexts) if contexts is not None else None
        grown: list[str] | None = None
        if record is not None and record.ephemeral:
            if wanted is None:
                wanted = record.contexts
            elif record.contexts is not None:
                grown = sorted({*record.contexts, *wanted})
        graph = self.graph(env, wanted, base_env=base, reuse=reused)
        if base is not None and check_reused:  # reused producers must be deployed in the base before anything starts
            for context in graph.contexts:
                for link in self.library.links(context):
                    if link.deploy and link.producer in reused and self.deployed(base, link.producer) is None:
                        raise OdeError(f"{base}.{link.producer} is reused by {env} but is not deployed in {base}: "
                                       f"run `ode up --env {base} --contexts {link.producer}` first")
        producers = {str(c): [str(p) for p in graph.producers_of(c)] for c in graph.contexts}
        return Scope(env=env, base=base, reused=frozenset(reused), order=list(graph.contexts),
                     deps={c: set(p) for c, p in producers.items()}, producers=producers,
                     record=record if record is not None and record.ephemeral else None, grown=grown)

    def destroy_scope(self, env: str, contexts: Iterable[str] | None = None, *, base_env: str | None = None,
                      reuse: Iterable[str] = (), with_dependents: bool = False) -> Scope:
        """What ``destroy`` covers: ``env``'s recorded stacks (or ``contexts`` and every recorded stack that needs
        them), consumers first (``deps``: what must be gone before a stack goes). Reused base stacks are never in
        it. A protected environment, one the registry has no record of, and a base whose stacks live environments
        made on demand reuse (unless ``with_dependents``: they are in ``dependents``) are refused."""
        base, _reused = self.where(env, base_env, reuse)
        if base is None and self.library.environment(env).protected:
            raise ProtectedEnvironmentError(f"environment {env!r} is protected (environments.yaml): ode never "
                                            "destroys it")
        if not knows(self.registry, env):
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
        dependents = self.dependent_environments(env, recorded) if base is None else []
        if dependents and not with_dependents:
            names = ", ".join(f"{d.name} (reuses {', '.join(sorted(set(d.reuse) & recorded))})" for d in dependents)
            raise UsageError(f"environments made on demand reuse stacks of {env}: {names}; destroy them first "
                             "(`ode env destroy NAME`), or pass --with-ephemeral to destroy them too")
        consumers: dict[str, set[str]] = {c: set() for c in recorded}
        for c in recorded:
            if c in self.library.contexts:
                for link in self.library.links(c):
                    if link.deploy and link.producer in recorded and link.producer != c:
                        consumers[link.producer].add(c)
        position = self.positions(base or env)
        order = sorted(recorded, key=lambda c: (-position.get(c, len(position)), c))
        return Scope(env=env, base=base, reused=frozenset(_reused), order=order, deps=consumers,
                     dependents=dependents)

    def deployed_scope(self, env: str, contexts: Iterable[str] | None = None) -> Scope:
        """What ``refresh`` and ``drift`` cover: the contexts of ``env`` deployed with success (of ``contexts``
        when given), in deploy order, all at once. A context asked for that is not deployed is a
        :class:`UsageError`."""
        records = {s.context: s for s in self.registry.stacks(env)}
        if not records and self.registry.environment(env) is None:
            self.library.environment(env)  # an unknown name: UnknownEnvironmentError naming the known ones
        deployed = {c for c, r in records.items() if r.status == StackStatus.SUCCEEDED and c in self.library.contexts}
        if contexts is not None:
            wanted = set(contexts)
            missing = sorted(wanted - deployed)
            if missing:
                raise UsageError(f"--contexts: {', '.join(missing)} not deployed in {env}")
            deployed = wanted
        record = self.registry.environment(env)
        base = record.base if record is not None and record.ephemeral else None
        position = self.positions(base or env)
        order = sorted(deployed, key=lambda c: (position.get(c, len(position)), c))
        return Scope(env=env, base=base, reused=frozenset(), order=order, deps={c: set() for c in order},
                     record=record if record is not None and record.ephemeral else None)

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

    def orphans(self, env: str) -> list[StackRecord]:
        """Stacks the registry holds in ``env`` for contexts the library no longer has."""
        return [s for s in self.registry.stacks(env) if s.context not in self.library.contexts]

    @staticmethod
    def orphan_reason(env: str, context: str) -> str:
        return (f"context {context!r} is no longer in the library, but its stack is deployed: "
                f"`ode destroy --env {env} --contexts {context}` removes it")

    # -- one stack -----------------------------------------------------------------------------------------------

    def stack_spec(self, env: str, context: str, base: str | None = None, upstream: dict[str, Any] | None = None,
                   secret: frozenset[tuple[str, str, str]] = frozenset()) -> StackSpec:
        """What the engine is given for ``context`` in ``env`` (``base``: the base of an environment made on demand):
        the project, the upstream outputs (``secret`` naming the secret ones), the stack config every stack gets
        and the tags of an environment made on demand."""
        config = dict(self.engine_config)
        tags = self.env_tags(env) if base is not None else None
        if tags:
            config[CONFIG_TAGS] = json.dumps(tags, sort_keys=True)
        return StackSpec(project=self.library.project, env=env, context=context, contracts_dir=self.library.root,
                         base_env=base, upstream=upstream or {}, secret_upstream=secret, config=config)

    def env_tags(self, env: str) -> dict[str, str]:
        """The tags of an environment made on demand, from its record (read once)."""
        if env not in self.tags:
            record = self.registry.environment(env)
            self.tags[env] = environment_tags(record) if record is not None and record.ephemeral else {}
        return self.tags[env]

    def fingerprint(self, spec: StackSpec) -> tuple[str, dict[str, str]]:
        """The stack's fingerprint, and the digest of each of its parts (to say what changed)."""
        # Tags say who made an environment and until when: they change no resource's shape (see CONFIG_TAGS).
        config = {k: v for k, v in spec.config.items() if k != CONFIG_TAGS}
        key = (spec.env, spec.context, spec.base_env, json.dumps(config, sort_keys=True))
        fixed = self._fixed.get(key)
        if fixed is None:  # the library does not change during a run: these parts are computed once
            ctx = self.library.contexts[spec.context]
            # Where outputs and events are published changes no resource: left out, so turning them on redeploys
            # nothing.
            place = self.library.environment(spec.settings_env).model_dump(mode="json",
                                                                           exclude={"publish", "events"})
            contract = ctx.model_dump(mode="json", exclude={"settings", "overrides", "description", "environments"})
            fixed = self._fixed[key] = {
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

    def deployed(self, env: str, producer: str) -> tuple[dict[str, Any], frozenset[str]] | None:
        """A deployed producer's outputs and secret names: from the registry, else (an environment that says
        ``publish: ssm``) from SSM Parameter Store, where another repository's or runner's ode published them.
        Outputs read from SSM carry their secret values (in memory only); the registry's never do. A real run
        never consumes what a rehearsal deployed or published (:class:`OdeError`): its values are made up."""
        rec = self.registry.stack(env, producer)
        if rec is not None and rec.status == StackStatus.SUCCEEDED:
            if rec.simulated and not self.simulated:
                raise OdeError(f"{env}.{producer} was deployed by the simulated engine only (its outputs are made "
                               f"up): deploy it for real first (`ode up --env {env} --contexts {producer}`)")
            return rec.outputs, frozenset(rec.secret_outputs)
        if rec is None and self.published is not None:
            found = self.published.read(env, producer)
            if found is not None:
                if not self.simulated and self.published.simulated(env, producer):
                    raise OdeError(f"{env}.{producer}: its outputs in SSM Parameter Store were published by a "
                                   "simulated run (tag ode:simulated=true), not by a real deploy: deploy it first")
                return found
        return None

    def upstream(self, env: str, context: str, base: str | None, produced: Mapping[str, Produced],
                 reused: Iterable[str]) -> tuple[dict[str, Any], frozenset[tuple[str, str, str]]]:
        """The producers' outputs ``context`` needs: from this run (``produced``), from the registry, or from the
        base environment for reused producers. Secret ones are read back through ``read_outputs``, never from the
        registry."""
        reused = set(reused)
        upstream: dict[str, dict[str, Any]] = {}
        secret: set[tuple[str, str, str]] = set()
        read_back: dict[tuple[str, str], dict[str, Any]] = {}
        for link in self.library.links(context):
            if not link.deploy:
                continue
            source_env = base if (link.producer in reused and base) else env
            done = produced.get(link.producer) if source_env == env else None
            if done is not None:
                outputs, secrets = done.outputs, done.secret_outputs
            else:
                found = self.deployed(source_env, link.producer)  # type: ignore[arg-type]
                if found is None:
                    raise OdeError(f"{source_env}.{link.producer} is not deployed, and {env}.{context} needs its "
                                   f"{link.interface!r}: run `ode up --env {source_env} --contexts {link.producer}`")
                outputs, secrets = found
            if link.interface in secrets and link.interface not in outputs:
                # An unchanged producer's outputs are the registry's, which never hold secret values: those are
                # read back from the engine's state, once per producer.
                key = (str(source_env), link.producer)
                if key not in read_back:
                    spec = self.stack_spec(str(source_env), link.producer, base if source_env == env else None)
                    read_back[key] = self._read_secrets(spec, env, context, link.interface)
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

    def _read_secrets(self, spec: StackSpec, env: str, context: str, interface: str) -> dict[str, Any]:
        if self.read_outputs is None:
            raise OdeError(f"{spec.stack_name}: its secret output {interface!r}, which {env}.{context} consumes, "
                           "cannot be read here (no engine state to read it from)")
        try:
            return self.read_outputs(spec)
        except OdeError as exc:
            raise OdeError(f"{spec.stack_name}: its secret output {interface!r}, which {env}.{context} consumes, "
                           f"could not be read from the engine: {str(exc).splitlines()[0]}") from None

    def decide(self, scope: Scope, context: str, produced: Mapping[str, Produced], *,
               forced: bool = False) -> StackPlan:
        """Whether ``context`` deploys, given what its producers handed on (``produced``: this run's; the others
        are read from the registry): ``unchanged`` when its fingerprint matches its last successful deploy (unless
        ``forced``: a drifted stack being healed), else ``deploy`` with why. A stack whose upstream cannot be read
        carries the ``error``."""
        env, base = scope.env, scope.base
        item = StackPlan(stack=f"{env}.{context}", context=context, env=env, base=base, action=PlanAction.DEPLOY,
                         reason="", producers=[f"{env}.{p}" for p in scope.producers.get(context, [])])
        try:
            upstream, secret = self.upstream(env, context, base, produced, scope.reused)
        except OdeError as exc:
            item.reason, item.error = "cannot be planned", str(exc)
            return item
        spec = self.stack_spec(env, context, base, upstream, secret)
        fingerprint, parts = self.fingerprint(spec)
        rec = self.registry.stack(env, context)
        item.spec, item.fingerprint, item.parts, item.record = spec, fingerprint, parts, rec
        rehearsed = rec is not None and rec.simulated and not self.simulated  # a real run deploys it for real
        if (rec is not None and rec.status == StackStatus.SUCCEEDED and rec.fingerprint == fingerprint
                and not forced and not rehearsed):
            item.action, item.reason = PlanAction.UNCHANGED, "fingerprint matches the last deploy"
            return item
        if rehearsed and rec is not None and rec.status == StackStatus.SUCCEEDED:
            item.reason = "deployed by the simulated engine only: now for real"
        else:
            item.reason = ("drifted: healing" if forced and rec is not None and rec.fingerprint == fingerprint
                           else why(rec, parts))
        return item

    def refuse_rehearsal(self, env: str, contexts: Iterable[str]) -> None:
        """For a simulated run (a rehearsal): :class:`RehearsalError` when a stack of ``contexts`` in ``env`` was
        deployed by a real engine, as its registry record or its outputs in SSM Parameter Store say; nothing of it
        may be replaced by made-up values. Nothing for a real run."""
        if not self.simulated:
            return
        contexts = list(contexts)
        records = {s.context: s for s in self.registry.stacks(env)} if contexts else {}  # one read, not one a stack
        for context in contexts:
            rec = records.get(context)
            if rec is not None and deployed_for_real(rec):
                raise RehearsalError(
                    f"{env}.{context} was deployed by the {rec.engine} engine: a simulated run never replaces what "
                    "a real engine deployed (registry record, SSM outputs, lifecycle events); rehearse in an "
                    "environment of its own (`ode env create NAME --engine simulated`), or use --engine "
                    f"{rec.engine}")
        if self.published is not None:
            try:
                real = self.published.real(env, contexts)
            except PublishError as exc:
                # Nothing can be checked, so nothing is written: the rehearsal goes on without SSM (one warning).
                log.warning("warning: %s; this simulated run publishes nothing to SSM", exc)
                self.published.suspend(env)
                real = []
            if real:
                raise RehearsalError(
                    f"{env}.{real[0]}: its outputs in SSM Parameter Store were published by a real engine, and a "
                    "simulated run never replaces them; rehearse in an environment of its own (`ode env create "
                    "NAME --engine simulated`)")

    def walk(self, scope: Scope, look: Callable[[StackPlan], Produced | None] | None = None) -> list[StackPlan]:
        """Every stack of ``scope`` in order, as ``plan`` shows it, without running any: a stack after producers
        that deploy waits for their outputs (``after dev.x: ...``) unless ``look`` (a preview) told them. ``look``
        is called on each stack that deploys and may return the outputs it would have."""
        produced: dict[str, Produced] = {}
        deploying: set[str] = set()
        items: list[StackPlan] = []
        for context in scope.order:
            producers = scope.producers.get(context, [])
            waiting = [p for p in producers if p in deploying and p not in produced]
            if waiting:
                items.append(StackPlan(
                    stack=f"{scope.env}.{context}", context=context, env=scope.env, base=scope.base,
                    action=PlanAction.DEPLOY, producers=[f"{scope.env}.{p}" for p in producers],
                    reason=(f"after {', '.join(f'{scope.env}.{p}' for p in waiting)}: deployed if their outputs "
                            "change, or its own inputs did")))
                deploying.add(context)
                continue
            item = self.decide(scope, context, produced)
            items.append(item)
            if item.error is not None:
                deploying.add(context)
            elif item.action == PlanAction.UNCHANGED and item.record is not None:
                produced[context] = Produced(item.record.outputs, frozenset(item.record.secret_outputs))
            else:
                deploying.add(context)
                seen = look(item) if look is not None else None
                if seen is not None:
                    produced[context] = seen
        return items

